"""Mandarin prompts: the catalogue of typed ids and texts, and the build into sound files."""

from prompts.catalogue import PROMPTS, Piece, Prompt, Sound

__all__ = ["PROMPTS", "Piece", "Prompt", "Sound"]
