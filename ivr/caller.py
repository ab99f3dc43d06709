"""The verbs a flow uses to talk to the caller: prompts, menus, entries, read-backs.

Each verb is a few AGI commands over `AgiChannel`, and takes typed prompts
(`prompts.catalogue.Prompt`) or the pieces a number is read with; the sound played is
`ivr12333/<id>`. Every step is logged with the prompt id, the entry's length and the
outcome, never the keys of an entry: one line per call, not per step. Each step is noted
in `Caller.steps`, which the server writes in the line that ends the call (and each step
goes to the log on its own at debug level).

Keys mean one thing everywhere: `#` ends an entry, `0` at a menu asks for an agent, and
`*` goes back (out of a menu, or out of a service to the card menu), except in the ID
number, where it stands for the letter X, as that prompt says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ivr.agi.channel import AgiChannel, Entry
from ivr.agi.env import CallInfo, clean_text
from ivr.agi.errors import CallerHungUp
from prompts.catalogue import Prompt, Sound, count, digits_of, sound_name

__all__ = [
    "AgentRequested",
    "CallInfo",
    "Caller",
    "CallerHungUp",
    "GoBack",
    "NoValidInput",
    "Timeouts",
]

log = structlog.get_logger("ivr.caller")

_VAR_NAME_RE = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}$")
_VAR_VALUE_LIMIT = 256
# What an entry may hold: digits, and X (keyed as *) where it stands for that letter.
_ENTRY_KEYS = re.compile(r"[0-9]+", re.ASCII)
_ENTRY_KEYS_X = re.compile(r"[0-9X]+", re.ASCII)
BACK = "*"

# What an entry's check returns: None if acceptable, else the prompt saying why not.
Check = Callable[[str], Prompt | None]
# Steps kept for a call's summary line; a caller going round a menu for long adds no more.
STEP_LIMIT = 200


class NoValidInput(Exception):
    """The caller gave no acceptable answer in the allowed number of tries."""


class AgentRequested(Exception):
    """The caller pressed 0 at a menu offering it."""


class GoBack(Exception):
    """The caller pressed * in an entry: back to the card menu."""


@dataclass(frozen=True)
class Timeouts:
    """GET DATA waits, in ms. Asterisk applies one value to the first key and between keys."""

    menu_ms: int = 5000
    # Used for entries: 6 s between keys suits an 18-digit ID; a silent caller is re-prompted.
    entry_ms: int = 6000


class Caller:
    """One caller on one channel, as a flow sees them."""

    def __init__(
        self, channel: AgiChannel, info: CallInfo, *, timeouts: Timeouts | None = None
    ) -> None:
        self.info = info
        self._channel = channel
        self._timeouts = timeouts or Timeouts()
        # Where the call went ("entry enter-pin accepted length=6 ..."), for the line the
        # server logs when the call ends: at info level one line a call, not one a step.
        self.steps: list[str] = []

    def note(self, event: str, **fields: object) -> None:
        """Note one step of the call (never an entry's keys) for its summary line."""
        if len(self.steps) < STEP_LIMIT:
            self.steps.append(" ".join([event, *(f"{k}={v}" for k, v in fields.items())]))
        elif len(self.steps) == STEP_LIMIT:
            self.steps.append("...")
        log.debug(event, **fields)

    # -- prompts -------------------------------------------------------------------------

    def play(self, *sounds: Sound) -> None:
        """Play each in turn, uninterruptibly; a missing one is logged and skipped."""
        for played in sounds:
            if not self._channel.stream_file(sound_name(played)):
                log.error("prompt.missing", prompt=str(played))

    def say_digits(self, number: str) -> None:
        """Read `number` out key by key (digits, and X)."""
        self.play(*digits_of(number))

    def pause(self, ms: int) -> None:
        """A short silence between prompts (Asterisk's Wait application)."""
        self._channel.command("EXEC", "Wait", f"{ms / 1000:g}")

    def say_count(self, n: int) -> None:
        """Say a quantity such as "three (times)"."""
        self.play(count(n))

    def say_tries_left(self, n: int) -> None:
        """ "You can try N more times"."""
        self.play(Prompt.TRIES_LEFT, count(n), Prompt.TIMES)

    # -- keys ----------------------------------------------------------------------------

    def _get(self, prompt: Prompt, timeout_ms: int, max_digits: int, secret: bool = False) -> Entry:
        entry = self._channel.get_data(sound_name(prompt), timeout_ms, max_digits, secret=secret)
        if entry is None:
            # The caller heard nothing and pressed nothing: as if silent.
            log.error("prompt.missing", prompt=str(prompt))
            return Entry("", timed_out=True)
        return entry

    def _failed(self, problem: Prompt, failures: int, tries: int) -> None:
        """Say what was wrong and how many tries are left; the last failure says nothing
        here (the flow says what happens next)."""
        if failures < tries:
            self.play(problem)
            self.say_tries_left(tries - failures)

    def menu(
        self, prompt: Prompt, choices: str, *, tries: int = 3, intro: Prompt | None = None
    ) -> str:
        """Play `intro` once, then the menu; a key from `choices` cuts either short and is
        returned.

        Silence plays "no-input", a key not offered "invalid-key", each with the tries
        left, and the menu is played again; the last failure raises NoValidInput. "0",
        when offered, raises AgentRequested.
        """
        key = ""
        if intro is not None:
            key = self._channel.stream_file_until_key(sound_name(intro), choices) or ""
            if key:
                self.note("menu", prompt=str(prompt), during=str(intro), key=key)
        for attempt in range(1, tries + 1):
            if not key:
                key = self._get(prompt, self._timeouts.menu_ms, 1).digits
            if key and key in choices:
                self.note("menu", prompt=str(prompt), attempt=attempt, key=key)
                if key == "0":
                    raise AgentRequested(str(prompt))
                return key
            problem = Prompt.INVALID_KEY if key else Prompt.NO_INPUT
            self.note("menu", prompt=str(prompt), attempt=attempt, outcome=str(problem))
            self._failed(problem, attempt, tries)
            key = ""
        raise NoValidInput(f"menu {prompt}: no valid key in {tries} tries")

    def choose_after(self, prompt: Prompt, choices: str, *, timeout_ms: int = 5000) -> str | None:
        """Play one interruptible prompt; the key pressed if in `choices`, else None."""
        key = self._get(prompt, timeout_ms, 1).digits
        chosen = key if key and key in choices else None
        self.note("choice", prompt=str(prompt), key=chosen)
        return chosen

    def ask(
        self,
        prompt: Prompt,
        *,
        min_len: int,
        max_len: int,
        secret: bool = False,
        star_is_x: bool = False,
        check: Check | None = None,
        tries: int = 3,
    ) -> str:
        """Collect an entry ended by `#` (or by silence after some keys) and return it.

        `*` raises GoBack, unless `star_is_x`, where it stands for the letter X. An empty
        entry plays "no-input", a wrong length or a key other than digits (A-D on keypads
        that have them) "invalid-key", a rejected one what `check` returns; each counts a
        try and is followed by the tries left; the last failure raises NoValidInput. The
        entry itself never reaches a log or an exception; `secret` marks it in the log.
        """
        failures = 0
        while True:
            entry = self._get(prompt, self._timeouts.entry_ms, max_len + 1, secret)
            text = entry.digits
            fields = {"prompt": str(prompt), "length": len(text), "secret": secret}
            if BACK in text and not star_is_x:
                self.note("entry", outcome="back", **fields)
                raise GoBack(str(prompt))
            if star_is_x:
                text = text.replace("*", "X")
            problem = self._problem(text, min_len, max_len, star_is_x, check)
            if problem is None:
                ended = "timeout" if entry.timed_out else "key"
                self.note("entry", outcome="accepted", ended=ended, **fields)
                return text
            failures += 1
            self.note("entry", outcome=str(problem), attempt=failures, **fields)
            if failures >= tries:
                raise NoValidInput(f"entry {prompt}: no valid entry in {tries} tries")
            self._failed(problem, failures, tries)

    @staticmethod
    def _problem(
        text: str, min_len: int, max_len: int, star_is_x: bool, check: Check | None
    ) -> Prompt | None:
        """None if `text` is acceptable, else the prompt telling the caller why not."""
        if not text:
            return Prompt.NO_INPUT
        # Keys A-D (Asterisk returns them as letters) are never part of a number.
        allowed = _ENTRY_KEYS_X if star_is_x else _ENTRY_KEYS
        if not min_len <= len(text) <= max_len or not allowed.fullmatch(text):
            return Prompt.INVALID_KEY
        return check(text) if check is not None else None

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
        self.note("hangup")
        self._channel.hangup()
