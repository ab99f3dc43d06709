"""`ivr12333 simulate --interactive --json` driven as a program would: a real process
speaking the line protocol, the real FastAGI server and flows inside it, the test
database behind them."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.outcomes import Actor, Channel, Verified
from backend.services.verify import verify_pin
from cli.interactive import BAD_LINE
from tests.conftest import ROOT, IssuedCard, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]
IVR12333 = ROOT / ".venv" / "bin" / "ivr12333"
# The fields of each event, exactly.
FIELDS = {
    "prompt": {"event", "id", "text", "seconds", "interruptible"},
    "input": {"event", "prompt", "max_digits", "timeout_ms"},
    "error": {"event", "message"},
    "end": {"event", "how", "ivr_next"},
}
IN_HOURS = "2026-12-02T10:30+08:00"  # a Wednesday morning
EVENING = "2026-12-02T20:30+08:00"


@pytest.fixture(scope="session")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this run's own for the prompts the simulator builds."""
    return tmp_path_factory.mktemp("sim-sounds")


class Simulator:
    """One `simulate --interactive --json` process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []

    async def next_event(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        assert line, "stdout ended before the end event"
        self.raw.append(line.decode())
        event: dict[str, Any] = json.loads(line)  # every stdout line is one JSON object
        assert set(event) == FIELDS[event["event"]], event
        self.events.append(event)
        return event

    async def until_input(self) -> dict[str, Any]:
        """Events up to the next input (or the end)."""
        while (event := await self.next_event())["event"] not in ("input", "end"):
            pass
        return event

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def finish(self) -> tuple[int, str]:
        """Read to the end; the exit code and standard error."""
        assert self.process.stdout is not None and self.process.stderr is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), 60)
        assert rest == b"", f"output after the end event: {rest!r}"
        err = await self.process.stderr.read()
        code = await asyncio.wait_for(self.process.wait(), 60)
        return code, err.decode()


async def start(
    database_url: str, sounds: Path, *args: str, env: dict[str, str] | None = None
) -> Simulator:
    process = await asyncio.create_subprocess_exec(
        str(IVR12333),
        "simulate",
        "--interactive",
        "--json",
        "--sounds",
        str(sounds),
        *args,
        env={**os.environ, "IVR_DATABASE_URL": database_url, **(env or {})},
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Simulator(process)


def answer_for(prompt: str, card: IssuedCard, new_pin: str) -> str:
    """What a caller changing the PIN keys at an entry, whatever the entries' order."""
    if "new-pin" in prompt:
        return f"{new_pin}#"
    if "pin" in prompt:
        return f"{card.pin}#"
    if "id-number" in prompt:
        return card.id_number.replace("X", "*") + "#"
    if "card-number" in prompt:
        return f"{card.digits}#"
    raise AssertionError(f"unexpected entry {prompt}")


def random_phone() -> str:
    return f"139{random.randint(0, 99_999_999):08d}"


async def test_a_program_changes_a_pin_over_the_protocol(
    issue: Issue, database_url: str, sounds: Path
) -> None:
    """A program answers each input event from the prompt it names, then hangs up (end of
    input) when offered another service after the change: the new PIN is the card's in
    PostgreSQL, every line is one JSON object with exactly the protocol's fields, each
    prompt carries its Mandarin text and the length of its built sound, each input follows
    its prompt, the end event says the caller hung up, and no PIN appears on either output."""
    card = await issue()
    new_pin = make_pin()
    sim = await start(database_url, sounds)
    menus = iter(["2"])
    entries = 0
    while (event := await sim.until_input())["event"] == "input":
        prompt = event["prompt"]
        assert sim.events[-2] == {**sim.events[-2], "event": "prompt", "id": prompt}
        if prompt.endswith("menu") or prompt == "after-service":
            key = next(menus, None)
            if key is None:
                sim.close_input()  # done: hang up at the menu
                continue
            sim.send(key)
        else:
            sim.send(answer_for(prompt, card, new_pin))
            entries += 1
    code, err = await sim.finish()
    assert code == 0, err
    assert err == ""
    assert event == {"event": "end", "how": "caller-hangup", "ivr_next": None}
    assert entries == 5  # card, PIN, ID, new PIN twice
    prompts = [e for e in sim.events if e["event"] == "prompt"]
    assert "pin-changed" in [p["id"] for p in prompts]
    for p in prompts:
        assert p["text"] and isinstance(p["text"], str)
        assert isinstance(p["seconds"], float) and 0.2 < p["seconds"] < 60, p
        assert isinstance(p["interruptible"], bool)
    welcome = prompts[0]
    assert welcome["id"] == "welcome" and "12333" in welcome["text"]
    assert all(p["interruptible"] for p in prompts if p["id"].startswith("enter-"))
    assert not any(p["interruptible"] for p in prompts if p["id"] == "pin-changed")
    output = "".join(sim.raw)
    assert card.pin not in output and new_pin not in output and new_pin not in err
    outcome = await verify_pin(card.digits, card.id_number, new_pin, Actor(Channel.IVR, "test"))
    assert isinstance(outcome, Verified)
    assert not outcome.card.pin_is_initial


async def test_silence_then_hang_up(database_url: str, sounds: Path) -> None:
    """`-` is silence: the menu says it heard nothing and asks again; `!` hangs up there."""
    sim = await start(database_url, sounds)
    first = await sim.until_input()
    assert first["prompt"] == "card-menu" and first["max_digits"] == 1
    assert first["timeout_ms"] > 0
    sim.send("-")
    again = await sim.until_input()
    assert again == first
    heard = [e["id"] for e in sim.events if e["event"] == "prompt"]
    assert heard[0] == "welcome" and "no-input" in heard[2:]
    sim.send("!")
    end = await sim.next_event()
    assert end == {"event": "end", "how": "caller-hangup", "ivr_next": None}
    code, err = await sim.finish()
    assert (code, err) == (0, "")


async def test_bad_lines_get_an_error_event_and_the_same_input_again(
    database_url: str, sounds: Path
) -> None:
    """A line that is not an entry (a letter, spaces inside, an empty line, a `#` before
    keys) is answered by an error event that does not repeat it and by the same input
    event; the call goes on, and end of input hangs up. No traceback, exit code 0."""
    sim = await start(database_url, sounds)
    asked = await sim.until_input()
    for bad in ("2x", "1 2", "", "#2", "٣"):
        sim.send(bad)
        error = await sim.next_event()
        assert error == {"event": "error", "message": BAD_LINE}
        assert await sim.next_event() == asked
    sim.send("  2  ")  # spaces around an entry are forgiven
    card_entry = await sim.until_input()
    assert card_entry["prompt"] == "enter-card-number"
    sim.close_input()
    end = await sim.next_event()
    assert end == {"event": "end", "how": "caller-hangup", "ivr_next": None}
    code, err = await sim.finish()
    assert code == 0
    assert "Traceback" not in err and err == ""


async def test_at_and_caller_id_reach_the_flows(database_url: str, sounds: Path) -> None:
    """`--at` places the call in or out of office hours and `--caller-id` is the caller's
    number: 0 in hours hands over to an agent (end `agent`, the hand-off recorded with that
    number); in the evening the agents' hours are said and the menu comes back. Two
    simulator processes are two calls with two call ids, so each keeps its own hand-off."""
    numbers = [random_phone(), random_phone()]
    for number in numbers:
        sim = await start(database_url, sounds, "--at", IN_HOURS, "--caller-id", number)
        await sim.until_input()
        sim.send("0")
        end = await sim.until_input()
        assert end == {"event": "end", "how": "agent", "ivr_next": "agent"}
        assert "agent-transfer" in [e["id"] for e in sim.events if e["event"] == "prompt"]
        assert await sim.finish() == (0, "")
    async with get_engine().connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT caller_number, call_id FROM handoffs WHERE caller_number = ANY(:n)"),
                {"n": numbers},
            )
        ).all()
    assert sorted(r.caller_number for r in rows) == sorted(numbers)

    sim = await start(database_url, sounds, "--at", EVENING)
    await sim.until_input()
    sim.send("0")
    menu = await sim.until_input()
    assert menu["event"] == "input" and menu["prompt"] == "card-menu"
    assert "agent-hours" in [e["id"] for e in sim.events if e["event"] == "prompt"]
    sim.send("!")
    assert (await sim.next_event())["how"] == "caller-hangup"
    assert await sim.finish() == (0, "")


async def test_at_is_refused_in_production_and_checked(database_url: str, sounds: Path) -> None:
    """Production refuses `--at` (the clock override is for development and tests); a moment
    without a time zone or not a moment at all is a one-line error; nothing is printed on
    standard output in either case."""
    prod = {"IVR_ENV": "prod"}
    for args, env, said in (
        (("--at", IN_HOURS), prod, "IVR_NOW_OVERRIDE is for development and tests only"),
        (("--at", "2026-12-02T10:30"), None, "--at needs a time zone"),
        (("--at", "tomorrow"), None, "--at: not a moment"),
    ):
        sim = await start(database_url, sounds, *args, env=env)
        sim.close_input()
        code, err = await sim.finish()
        assert code == 1 and said in err, err
        assert "Traceback" not in err
        assert sim.raw == []


async def test_the_ivr_says_goodbye(database_url: str, sounds: Path) -> None:
    """The `echo` script reads the entry back and says goodbye, leaving IVR_NEXT=hangup for
    the dialplan: end `ivr-hangup`; the read-back is one prompt a key."""
    sim = await start(database_url, sounds, "--script", "echo")
    asked = await sim.until_input()
    assert asked["prompt"] == "enter-card-number"
    sim.send("307#")
    end = await sim.until_input()
    assert end == {"event": "end", "how": "ivr-hangup", "ivr_next": "hangup"}
    heard = [e["id"] for e in sim.events if e["event"] == "prompt"]
    assert heard[-4:] == ["digit-3", "digit-0", "digit-7", "goodbye"]
    assert await sim.finish() == (0, "")


def test_pin_entries_are_known_by_their_prompts() -> None:
    """What is keyed after a PIN prompt is hidden; menus that speak of the PIN, the card
    number and the ID number are not PIN entries."""
    from ivr.simulator import asks_for_pin
    from prompts.catalogue import Prompt

    for prompt in (
        Prompt.ENTER_PIN,
        Prompt.ENTER_PIN_AGAIN,
        Prompt.ENTER_NEW_PIN_RULES,
        Prompt.ENTER_NEW_PIN,
        Prompt.ENTER_NEW_PIN_AGAIN,
    ):
        assert asks_for_pin(str(prompt)), prompt
    for prompt in (
        Prompt.LOSS_INITIAL_PIN_CHOICES,
        Prompt.WRONG_PIN,
        Prompt.CARD_MENU,
        Prompt.ENTER_CARD_NUMBER,
        Prompt.ENTER_ID_NUMBER,
    ):
        assert not asks_for_pin(str(prompt)), prompt
