"""The Mandarin prompt catalogue and the build that turns it into Asterisk sound files."""

from prompts.catalogue import PROMPTS, missing, sound_path

__all__ = ["PROMPTS", "missing", "sound_path"]
