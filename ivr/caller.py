"""The verbs a flow uses to talk to the caller: prompts, menus, entries, read-backs.

Each verb is a few AGI commands over `AgiChannel`. Prompt ids are catalogue ids
(`prompts.catalogue`); the sound played is `ivr12333/<id>`. Every step is logged with the
prompt id, the entry's length and the outcome, never the keys of an entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from ivr.agi.channel import AgiChannel, Entry
from ivr.agi.env import CallInfo, clean_text
from ivr.agi.errors import CallerHungUp
from ivr.contract import SOUNDS_SUBDIR

__all__ = [
    "AgentRequested",
    "CallInfo",
    "Caller",
    "CallerHungUp",
    "NoValidInput",
    "Timeouts",
]

log = structlog.get_logger("ivr.caller")

_PROMPT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_VAR_NAME_RE = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}$")
_VAR_VALUE_LIMIT = 256
# A keypad that keeps sending '*' must not keep a caller in an entry for ever.
_MAX_RESTARTS = 10
# What an entry may hold: digits, and X (keyed as *) where it stands for that letter.
_ENTRY_KEYS = re.compile(r"[0-9]+", re.ASCII)
_ENTRY_KEYS_X = re.compile(r"[0-9X]+", re.ASCII)


class NoValidInput(Exception):
    """The caller gave no acceptable answer in the allowed number of tries."""


class AgentRequested(Exception):
    """The caller pressed 0 at a menu offering it."""


@dataclass(frozen=True)
class Timeouts:
    """GET DATA waits, in ms. Asterisk applies one value to the first key and between keys."""

    menu_ms: int = 5000
    # Used for entries: 6 s between keys suits an 18-digit ID; a silent caller is re-prompted.
    entry_ms: int = 6000


def sound(prompt_id: str) -> str:
    """The sound file Asterisk plays for a catalogue id."""
    if not _PROMPT_ID_RE.match(prompt_id):
        raise ValueError(f"not a prompt id: {prompt_id!r}")
    return f"{SOUNDS_SUBDIR}/{prompt_id}"


class Caller:
    """One caller on one channel, as a flow sees them."""

    def __init__(
        self, channel: AgiChannel, info: CallInfo, *, timeouts: Timeouts | None = None
    ) -> None:
        self.info = info
        self._channel = channel
        self._timeouts = timeouts or Timeouts()

    # -- prompts -------------------------------------------------------------------------

    def play(self, *prompt_ids: str) -> None:
        """Play each prompt in turn, uninterruptibly; a missing one is logged and skipped."""
        for prompt_id in prompt_ids:
            if not self._channel.stream_file(sound(prompt_id)):
                log.error("prompt.missing", prompt=prompt_id)

    def say_digits(self, text: str) -> None:
        """Read `text` out key by key: digits, and X (or other letters) by name.

        Anything else (spaces, dashes) is skipped.
        """
        ids = []
        for ch in text:
            if "0" <= ch <= "9":
                ids.append(f"digit-{ch}")
            elif ch.isascii() and ch.isalpha():
                ids.append(f"letter-{ch.lower()}")
        self.play(*ids)

    def pause(self, ms: int) -> None:
        """A short silence between prompts (Asterisk's Wait application)."""
        self._channel.command("EXEC", "Wait", f"{ms / 1000:g}")

    def say_count(self, n: int) -> None:
        """Say a quantity such as "three (times)"; the catalogue has count-1 upwards."""
        if n < 1:
            raise ValueError(f"no count prompt for {n}")
        self.play(f"count-{n}")

    # -- keys ----------------------------------------------------------------------------

    def _get(self, prompt_id: str, timeout_ms: int, max_digits: int, secret: bool = False) -> Entry:
        entry = self._channel.get_data(sound(prompt_id), timeout_ms, max_digits, secret=secret)
        if entry is None:
            # The caller heard nothing and pressed nothing: as if silent.
            log.error("prompt.missing", prompt=prompt_id)
            return Entry("", timed_out=True)
        return entry

    def menu(
        self, prompt_id: str, choices: str, *, tries: int = 3, intro: Sequence[str] = ()
    ) -> str:
        """Play `intro` once, then the menu (keys interrupt it); return a key from `choices`.

        Silence plays "no-input", a key not offered plays "invalid-key", and the menu is
        played again; the last failure plays nothing and raises NoValidInput. "0", when
        offered, raises AgentRequested.
        """
        self.play(*intro)
        for attempt in range(1, tries + 1):
            key = self._get(prompt_id, self._timeouts.menu_ms, 1).digits
            if key and key in choices:
                log.info("menu", prompt=prompt_id, attempt=attempt, key=key)
                if key == "0":
                    raise AgentRequested(prompt_id)
                return key
            outcome = "invalid-key" if key else "no-input"
            log.info("menu", prompt=prompt_id, attempt=attempt, outcome=outcome)
            if attempt < tries:
                self.play(outcome)
        raise NoValidInput(f"menu {prompt_id}: no valid key in {tries} tries")

    def choose_after(self, prompt_id: str, choices: str, *, timeout_ms: int = 5000) -> str | None:
        """Play one interruptible prompt; the key pressed if in `choices`, else None."""
        key = self._get(prompt_id, timeout_ms, 1).digits
        chosen = key if key and key in choices else None
        log.info("choice", prompt=prompt_id, key=chosen)
        return chosen

    def ask(
        self,
        prompt_id: str,
        *,
        min_len: int,
        max_len: int,
        secret: bool = False,
        star_is_x: bool = False,
        validate: Callable[[str], str | None] | None = None,
        tries: int = 3,
    ) -> str:
        """Collect an entry ended by `#` (or by silence after some keys) and return it.

        `*` restarts the entry (re-asked, not counted) unless `star_is_x`, where it stands
        for the letter X. Empty entries play "no-input", wrong lengths and keys other than
        digits (A-D on keypads that have them) "invalid-key",
        rejected ones whatever `validate` returns; each counts a try, and after `tries` the
        last failure plays nothing and raises NoValidInput. The entry itself never reaches a
        log or an exception; `secret` marks it in the log.
        """
        failures = restarts = 0
        while True:
            entry = self._get(prompt_id, self._timeouts.entry_ms, max_len + 1, secret)
            text = entry.digits
            fields = {"prompt": prompt_id, "length": len(text), "secret": secret}
            if "*" in text and not star_is_x and restarts < _MAX_RESTARTS:
                restarts += 1
                log.info("entry", outcome="restarted", **fields)
                continue
            if star_is_x:
                text = text.replace("*", "X")
            problem = self._check(text, min_len, max_len, star_is_x, validate)
            if problem is None:
                ended = "timeout" if entry.timed_out else "key"
                log.info("entry", outcome="accepted", ended=ended, **fields)
                return text
            failures += 1
            log.info("entry", outcome=problem, attempt=failures, **fields)
            if failures >= tries:
                raise NoValidInput(f"entry {prompt_id}: no valid entry in {tries} tries")
            self.play(problem)

    @staticmethod
    def _check(
        text: str,
        min_len: int,
        max_len: int,
        star_is_x: bool,
        validate: Callable[[str], str | None] | None,
    ) -> str | None:
        """None if `text` is acceptable, else the prompt id telling the caller why not."""
        if not text:
            return "no-input"
        # Keys A-D (Asterisk returns them as letters) and a stray * are never part of one.
        allowed = _ENTRY_KEYS_X if star_is_x else _ENTRY_KEYS
        if not min_len <= len(text) <= max_len or not allowed.fullmatch(text):
            return "invalid-key"
        return validate(text) if validate is not None else None

    # -- the channel ---------------------------------------------------------------------

    def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable for the dialplan; the value is cleaned and cut short."""
        if not _VAR_NAME_RE.match(name):
            raise ValueError(f"not a channel variable name: {name!r}")
        unquoted = value.replace('"', "").replace("\\", "")
        cleaned = clean_text(unquoted, _VAR_VALUE_LIMIT)
        self._channel.set_variable(name, cleaned)

    def hangup(self) -> None:
        """End the call now (the dialplan does not continue)."""
        log.info("hangup")
        self._channel.hangup()
