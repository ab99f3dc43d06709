"""`ivr12333 simulate --interactive`: one call through the real FastAGI server, with the
caller at this terminal (or a program on a pipe) keying each entry when it comes.

For people, each prompt is printed as its Mandarin text, then a `> ` line takes the keys
of one entry: keys (`#` may end them), `-` for silence, `!` to hang up. PIN entries are
not echoed on a terminal and never printed.

With `--json`, for programs, standard output carries one JSON object a line and nothing
else (the server's log goes to the log file):

    {"event": "prompt", "id": "<prompt id>", "text": "<Mandarin text>",
     "seconds": <float, length of the built sound; null if not built>,
     "interruptible": <bool, keys cut it short>}
    {"event": "input", "prompt": "<prompt id>", "max_digits": <int>, "timeout_ms": <int>}
    {"event": "error", "message": "<why the line was refused>"}
    {"event": "end", "how": "<caller-hangup|ivr-hangup|agent|unavailable|...>",
     "ivr_next": <str|null>}

After each `input` event one line is read from standard input, an entry as above. A line
that is not one is answered by an `error` event (which never repeats the line: it may hold
a PIN) and the same `input` event again. End of input hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ivr.fake_asterisk import HANG_UP, Asked, CallEvent, Heard, Missing, Paused, check_groups
from ivr.simulator import PromptLengths, SimulatedCall, asks_for_pin, place_call

BAD_LINE = "not an entry: keys 0-9, * and A-D, optionally ending in #; - for silence; ! to hang up"
HELP = "Key one entry at each prompt and press Enter: keys (# may end them), - silence, ! hang up."
# A person may think for a long while; the server's own reply limit still applies.
CALL_TIME_LIMIT = 4 * 3600.0


def valid_entry(line: str) -> str | None:
    """The key group on `line` (surrounding spaces ignored), or None if it is not one."""
    group = line.strip()
    try:
        check_groups([group])
    except ValueError:
        return None
    return group


class Front:
    """What the caller sees and how their lines are read; the JSON protocol by default."""

    def __init__(self, stdin: TextIO, stdout: TextIO, text_of: Callable[[str], str]) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.text_of = text_of

    def _emit(self, **fields: Any) -> None:
        self.stdout.write(json.dumps(fields, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def start(self, script: str, caller_number: str) -> None:
        pass

    def heard(self, prompt_id: str, seconds: float | None, interruptible: bool) -> None:
        self._emit(
            event="prompt",
            id=prompt_id,
            text=self.text_of(prompt_id),
            seconds=seconds,
            interruptible=interruptible,
        )

    def paused(self, seconds: float) -> None:
        pass  # not part of the protocol: a pause is heard as nothing

    def missing(self, prompt_id: str) -> None:
        pass

    def asked(self, prompt_id: str, max_digits: int, timeout_ms: int) -> None:
        self._emit(event="input", prompt=prompt_id, max_digits=max_digits, timeout_ms=timeout_ms)

    async def read(self, secret: bool) -> str | None:
        """One line from the caller; None at end of input."""
        line = await asyncio.to_thread(self.stdin.readline)
        return line or None

    def refused(self) -> None:
        self._emit(event="error", message=BAD_LINE)

    def ended(self, how: str, ivr_next: str | None) -> None:
        self._emit(event="end", how=how, ivr_next=ivr_next)


class Terminal(Front):
    """For people: the prompts' text, a `> ` line for each entry."""

    def __init__(self, stdin: TextIO, stdout: TextIO, text_of: Callable[[str], str]) -> None:
        super().__init__(stdin, stdout, text_of)
        # A number read out key by key is gathered on one line.
        self._spelled = ""

    def _line(self, text: str) -> None:
        self._flush()
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def _flush(self) -> None:
        if self._spelled:
            spelled, self._spelled = self._spelled.strip(), ""
            self.stdout.write(f"🔊 {spelled}\n")

    def start(self, script: str, caller_number: str) -> None:
        self._line(f"☎ calling script {script} from {caller_number}. {HELP}")

    def heard(self, prompt_id: str, seconds: float | None, interruptible: bool) -> None:
        if prompt_id.startswith(("digit-", "letter-")):
            self._spelled += self.text_of(prompt_id)
        else:
            self._line(f"🔊 {self.text_of(prompt_id) or f'[{prompt_id}]'}")

    def paused(self, seconds: float) -> None:
        if self._spelled:
            self._spelled += " "

    def missing(self, prompt_id: str) -> None:
        self._line(f"⚠ missing prompt: {prompt_id}")

    def asked(self, prompt_id: str, max_digits: int, timeout_ms: int) -> None:
        self._flush()  # the `> ` comes with the read, once echo is set for the entry

    def _ask(self) -> str | None:
        self.stdout.write("> ")
        self.stdout.flush()
        return self.stdin.readline() or None

    async def read(self, secret: bool) -> str | None:
        typed = self.stdin.isatty()
        if secret and typed:
            line = await asyncio.to_thread(self._ask_unechoed)
        else:
            line = await asyncio.to_thread(self._ask)
        if secret and line is not None:
            shown = "••••••"  # the entry was made; its keys, or how many, are not shown
        elif typed or line is None:
            return line  # the terminal has echoed it
        else:
            shown = line.strip()  # from a pipe: show what the caller keyed
        self.stdout.write(f"{shown}\n")
        self.stdout.flush()
        return line

    def _ask_unechoed(self) -> str | None:
        # Echo goes off before the `> `, so nothing typed after it can be echoed.
        with _no_echo(self.stdin.fileno()):
            return self._ask()

    def refused(self) -> None:
        self._line(f"⚠ {BAD_LINE}")

    def ended(self, how: str, ivr_next: str | None) -> None:
        after = f" (IVR_NEXT={ivr_next})" if ivr_next else ""
        self._line(f"— {how}{after}")


@contextlib.contextmanager
def _no_echo(fd: int) -> Iterator[None]:
    """A terminal that does not echo what is typed (a PIN), restored afterwards."""
    import termios

    old = termios.tcgetattr(fd)
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


async def talk(
    front: Front, script: str, caller_number: str, lengths: PromptLengths
) -> SimulatedCall:
    """Place the call; each entry is read from `front` when the flow asks for it."""

    def observe(event: CallEvent) -> None:
        # Keyed is not shown: the front has what was typed, and a PIN stays unshown.
        if isinstance(event, Heard):
            front.heard(event.prompt, lengths(event.prompt), event.interruptible)
        elif isinstance(event, Asked):
            front.asked(event.prompt, event.max_digits, event.timeout_ms)
        elif isinstance(event, Paused):
            front.paused(event.seconds)
        elif isinstance(event, Missing):
            front.missing(event.prompt)

    async def keys(prompt_id: str, max_digits: int, timeout_ms: int) -> str:
        while True:
            line = await front.read(secret=asks_for_pin(prompt_id))
            if line is None:
                return HANG_UP
            group = valid_entry(line)
            if group is not None:
                return group
            front.refused()
            front.asked(prompt_id, max_digits, timeout_ms)

    front.start(script, caller_number)
    call = await place_call(
        script,
        key_source=keys,
        observer=observe,
        caller_number=caller_number,
        time_limit=CALL_TIME_LIMIT,
    )
    front.ended(call.how, call.ivr_next)
    return call


def prompt_text() -> Callable[[str], str]:
    """Prompt id -> its Mandarin text; an id the catalogue lacks reads as ""."""
    from prompts.catalogue import PROMPTS

    return lambda prompt_id: PROMPTS.get(prompt_id, "")


def run(script: str, caller_number: str, lengths: PromptLengths, json_mode: bool) -> SimulatedCall:
    """The interactive call on this process's standard input and output."""
    front_type = Front if json_mode else Terminal
    front = front_type(sys.stdin, sys.stdout, prompt_text())

    async def call() -> SimulatedCall:
        from backend.db.engine import dispose_all

        try:
            return await talk(front, script, caller_number, lengths)
        finally:
            await dispose_all()

    return asyncio.run(call())
