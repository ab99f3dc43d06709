"""Callers for the fault tests: scripted calls over a real socket to the real FastAGI
server, timed command by command, and what the dialplan plays after the handler returns.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ivr import contract
from ivr.fake_asterisk import FakeCall, Transcript
from tests.conftest import IssuedCard

# Where the call goes after the handler returns, as dialplan/extensions.conf decides
# ([ivr-entry], [ivr-fallback]); tests/faults/test_contract.py holds the file to it.
QUEUE = "(queue)"
APOLOGIES = ("service-unavailable", "system-error")

Kind = Literal["status", "change", "loss", "agent"]
KINDS: tuple[Kind, ...] = ("status", "change", "loss", "agent")
# The prompt that tells a caller of each kind they were served.
SERVED = {
    "status": "status-intro",
    "change": "pin-changed",
    "loss": "loss-reported",
    "agent": "agent-transfer",
}


def dialplan_after(transcript: Transcript, office_open: bool) -> list[str]:
    """What the caller hears from the dialplan once the handler has returned."""
    if transcript.ended != "agi-returned":
        return []  # hung up, by the caller or by the handler
    decided = transcript.variables.get(contract.VAR_NEXT, "")
    if decided == contract.NEXT_AGENT:
        return [QUEUE]
    if decided == contract.NEXT_HANGUP:
        return []
    # "unavailable", or no decision at all: the fallback's one apology.
    return ["service-unavailable", *([QUEUE] if office_open else ["agent-hours", "goodbye"])]


class TimedCall(FakeCall):
    """A scripted call that notes when each command arrives, and can act on a prompt."""

    def __init__(
        self,
        *args: object,
        on_prompt: Callable[[str], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.times: list[tuple[float, float]] = []
        self._on_prompt = on_prompt

    async def _answer(self, line: str) -> None:
        arrived = time.monotonic()
        await super()._answer(line)
        # The command arrived, and its reply went (after the caller's keys, if any).
        self.times.append((arrived, time.monotonic()))
        if self._on_prompt is not None and line.startswith(("STREAM FILE", "GET DATA")):
            sound = line.split()[2]
            self._on_prompt(sound.removeprefix(f"{contract.SOUNDS_SUBDIR}/"))


@dataclass
class Heard:
    """One call as its caller lived it."""

    kind: str
    transcript: Transcript
    started: float
    times: list[tuple[float, float]]  # each command: when it came, when it was answered
    ended_at: float
    office_open: bool

    @property
    def heard(self) -> list[str]:
        """Every prompt, the handler's and then the dialplan's."""
        return self.transcript.heard + dialplan_after(self.transcript, self.office_open)

    @property
    def next(self) -> str:
        return self.transcript.variables.get(contract.VAR_NEXT, "")

    @property
    def apologies(self) -> int:
        return sum(1 for prompt in self.heard if prompt in APOLOGIES)

    @property
    def served(self) -> bool:
        return SERVED[self.kind] in self.transcript.heard

    @property
    def longest_silence(self) -> float:
        """The longest time the caller waited on the server: from the answer to one
        command (the caller's keys, a prompt's end) to the next command, and from the last
        answer until the handler returned the call."""
        answered = [self.started, *(replied for _, replied in self.times)]
        following = [*(came for came, _ in self.times), self.ended_at]
        return max(b - a for a, b in zip(answered, following, strict=True))

    @property
    def outcome(self) -> str:
        """In a few words: served, apology then queue/hours, hung up..."""
        words = [SERVED[self.kind]] if self.served else []
        if self.transcript.ended == "caller-hangup":
            return ", ".join([*words, "hung up"])
        if self.apologies:
            words.append("one apology" if self.apologies == 1 else f"{self.apologies} apologies")
        after = dialplan_after(self.transcript, self.office_open)
        if QUEUE in after:
            words.append("queue")
        elif "agent-hours" in after:
            words.append("hours, goodbye")
        elif self.transcript.ended == "server-hangup":
            words.append("goodbye")
        return ", ".join(words) or f"ended {self.transcript.ended}"


def id_keys(id_number: str) -> str:
    return id_number.replace("X", "*") + "#"


def keys_for(kind: Kind, card: IssuedCard, new_pin: str = "") -> tuple[str, list[str]]:
    """The script and key groups of a caller of `kind` on `card`."""
    if kind == "status":
        return "main", ["3", f"{card.digits}#", f"{card.pin}#", id_keys(card.id_number)]
    if kind == "change":
        entries = [f"{card.digits}#", f"{card.pin}#", id_keys(card.id_number)]
        return "change-pin", [*entries, f"{new_pin}#", f"{new_pin}#"]
    if kind == "loss":
        entries = [f"{card.digits}#", f"{card.pin}#", id_keys(card.id_number)]
        return "report-loss", [*entries, "1", "-"]
    return "main", ["0"]


async def place(
    port: int,
    kind: Kind,
    card: IssuedCard,
    *,
    office_open: bool,
    new_pin: str = "",
    think_seconds: float = 0.0,
    hangup_at: int | str | None = None,
    on_prompt: Callable[[str], None] | None = None,
) -> Heard:
    """One call to the server on `port`, as the fake Asterisk places it."""
    script, keys = keys_for(kind, card, new_pin)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    call = TimedCall(
        reader,
        writer,
        keys,
        hangup_at=hangup_at,
        think_seconds=think_seconds,
        on_prompt=on_prompt,
    )
    caller_number = f"139{random.randint(0, 99_999_999):08d}"
    transcript = await call.run(script, "127.0.0.1", port, caller_number, 60.0)
    return Heard(kind, transcript, started, call.times, time.monotonic(), office_open)


@dataclass
class FaultFigures:
    """What one fault did to its callers, for the report (docs/faults.md)."""

    fault: str
    calls: list[Heard] = field(default_factory=list)
    recovery_seconds: float | None = None
    half_written: int = 0
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def longest_silence(self) -> float:
        return max((c.longest_silence for c in self.calls), default=0.0)

    def outcomes(self) -> dict[str, int]:
        return dict(Counter(f"{c.kind}: {c.outcome}" for c in self.calls).most_common())

    def summary(self) -> dict[str, object]:
        return {
            "fault": self.fault,
            "calls": len(self.calls),
            "heard": self.outcomes(),
            "longest_silence_s": round(self.longest_silence, 3),
            "recovery_s": None
            if self.recovery_seconds is None
            else round(self.recovery_seconds, 2),
            "half_written_rows": self.half_written,
            **self.notes,
        }


def spread(kinds: Sequence[Kind], count: int) -> list[Kind]:
    """`count` callers, the kinds in turn."""
    return [kinds[i % len(kinds)] for i in range(count)]
