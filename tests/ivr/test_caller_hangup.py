"""A hang-up at any moment ends the flow with CallerHungUp and one log line."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from ivr.caller import Caller, CallerHungUp
from prompts.catalogue import Prompt
from tests.ivr.conftest import Line

KEYS = ["2", "123456#", "9"]


def every_verb(caller: Caller) -> str:
    caller.play(Prompt.WELCOME)
    caller.menu(Prompt.CARD_MENU, "12", intro=Prompt.BACK_TO_MENU)
    pin = caller.ask(Prompt.ENTER_PIN, min_len=6, max_len=6, secret=True)
    caller.say_digits("1X")
    caller.say_count(2)
    caller.set_variable("IVR_NEXT", "hangup")
    caller.choose_after(Prompt.LOSS_REFERENCE_REPEAT, "9")
    caller.hangup()
    return f"done {len(pin)}"


async def _command_count(line: Line) -> int:
    transcript = await line.call(every_verb, KEYS)
    assert line.results.pop() == "done 6"
    return len(transcript.commands)


async def test_full_call_without_hangup(line: Line) -> None:
    """The reference call runs every verb and ends with the server's hang-up."""
    assert await _command_count(line) == 10


@pytest.mark.parametrize("nth", range(1, 11))
async def test_hangup_at_each_command(line: Line, nth: int) -> None:
    """Hanging up as the Nth command arrives raises CallerHungUp in the flow, logged once."""
    with capture_logs() as logs:
        transcript = await line.call(every_verb, KEYS, hangup_at=nth)
    assert isinstance(line.results[0], CallerHungUp)
    assert transcript.ended == "caller-hangup"
    # Nothing sent after the hang-up but a status check (is it a hang-up or a missing file?).
    assert set(transcript.commands[nth:]) <= {"CHANNEL STATUS"}
    ends = [entry for entry in logs if entry["event"].startswith("call.")]
    assert [entry["event"] for entry in ends] == ["call.hung_up"]
    assert ends[0]["at"]


async def test_hangup_while_a_prompt_plays(line: Line) -> None:
    """Hanging up during a named prompt ends the call there."""
    with capture_logs() as logs:
        transcript = await line.call(every_verb, KEYS, hangup_at="enter-pin")
    assert isinstance(line.results[0], CallerHungUp)
    assert transcript.heard[-1] == "enter-pin"
    (end,) = [entry for entry in logs if entry["event"] == "call.hung_up"]
    assert end["at"] == "GET DATA ivr12333/enter-pin"


async def test_hangup_when_keys_run_out(line: Line) -> None:
    """When the key groups run out the caller hangs up at the next input prompt."""
    transcript = await line.call(every_verb, ["2"])
    assert isinstance(line.results[0], CallerHungUp)
    assert transcript.heard[-1] == "enter-pin"


async def test_hangup_group(line: Line) -> None:
    """The `!` group hangs up at that input prompt."""
    transcript = await line.call(every_verb, ["!", "1"])
    assert isinstance(line.results[0], CallerHungUp)
    assert transcript.heard == ["welcome", "back-to-menu", "card-menu"]


async def test_one_info_line_a_call_with_its_steps(line: Line) -> None:
    """At info level a call logs one line, the one that ends it, and that line lists the
    caller's steps (the menu key, the PIN entry's length and that it was secret) without
    the PIN itself; no step has a line of its own at info."""
    with capture_logs() as logs:
        await line.call(every_verb, ["2", "493817#", "9"])
    assert line.results.pop() == "done 6"
    info = [entry for entry in logs if entry["log_level"] == "info"]
    assert [entry["event"] for entry in info] == ["call.completed"]
    steps = info[0]["steps"]
    assert steps[0].startswith("menu ") and "key=2" in steps[0]
    (entry,) = [step for step in steps if step.startswith("entry ")]
    assert "prompt=enter-pin" in entry and "length=6" in entry and "secret=True" in entry
    assert "choice prompt=loss-reference-repeat key=9" in steps
    assert steps[-1] == "hangup"
    assert "493817" not in repr(logs)
