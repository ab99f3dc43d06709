"""The fake Asterisk's key source and observer: what a person or a program at the keypad
is asked, and what they hear, as it happens."""

from __future__ import annotations

import pytest

from ivr.fake_asterisk import Asked, CallEvent, Heard, Keyed, Paused, Transcript
from ivr.simulator import SimulatedCall
from tests.ivr.test_fake_asterisk import drive


async def test_observer_hears_each_prompt_and_whether_keys_cut_it_short() -> None:
    """GET DATA prompts and STREAM FILE with escape digits are interruptible; STREAM FILE
    with "" is not; a Wait is a pause; an entry is asked, then keyed. A STREAM
    FILE with escape digits is listened through, as Asterisk reports it."""
    events: list[CallEvent] = []
    replies, _, transcript = await drive(
        [
            'STREAM FILE ivr12333/welcome ""',
            'STREAM FILE ivr12333/main-menu "0129"',
            'STREAM FILE ivr12333/digit-1 ""',
            "EXEC Wait 0.6",
            "GET DATA ivr12333/enter-card-number 6000 9",
        ],
        ["12345678#"],
        observer=events.append,
    )
    assert events == [
        Heard("welcome", False),
        Heard("main-menu", True),
        Heard("digit-1", False),
        Paused(0.6),
        Heard("enter-card-number", True),
        Asked("enter-card-number", 9, 6000),
        Keyed("12345678#"),
    ]
    assert replies[:2] == ["200 result=0 endpos=16000", "200 result=0 endpos=16000"]
    assert replies[4] == "200 result=12345678"
    assert transcript.heard == ["welcome", "main-menu", "digit-1", "enter-card-number"]


async def test_key_source_is_asked_at_each_entry_and_can_hang_up() -> None:
    """A key source gets the prompt id, max digits and timeout of each entry and its answer
    is keyed; `!` hangs up there."""
    asked: list[tuple[str, int, int]] = []
    answers = iter(["7", "!"])

    async def source(prompt: str, max_digits: int, timeout_ms: int) -> str:
        asked.append((prompt, max_digits, timeout_ms))
        return next(answers)

    replies, _, transcript = await drive(
        [
            "GET DATA ivr12333/main-menu 5000 1",
            "GET DATA ivr12333/card-menu 3000 1",
            "GET DATA ivr12333/enter-pin 3000 6",
        ],
        key_source=source,
    )
    assert asked == [("main-menu", 1, 5000), ("card-menu", 1, 3000)]
    assert replies[0] == "200 result=7"
    assert replies[1:3] == ["200 result=-1", "HANGUP"]
    assert transcript.ended == "caller-hangup"
    assert transcript.keys == [("main-menu", "7")]


@pytest.mark.parametrize(
    ("ended", "ivr_next", "how"),
    [
        ("caller-hangup", None, "caller-hangup"),
        ("caller-hangup", "agent", "caller-hangup"),
        ("server-hangup", "hangup", "ivr-hangup"),
        ("agi-returned", "hangup", "ivr-hangup"),
        ("agi-returned", "agent", "agent"),
        ("agi-returned", "unavailable", "unavailable"),
        ("agi-returned", None, "agi-returned"),
        ("timeout", None, "timeout"),
    ],
)
def test_how_a_call_ended(ended: str, ivr_next: str | None, how: str) -> None:
    """The end event's `how`: the caller's hang-up first, then the server's, then what the
    script left IVR_NEXT for the dialplan to do."""
    transcript = Transcript(ended=ended)
    if ivr_next is not None:
        transcript.variables["IVR_NEXT"] = ivr_next
    call = SimulatedCall(transcript, ())
    assert (call.how, call.ivr_next) == (how, ivr_next)
