"""Real calls: SIPp dials 12333 on Asterisk 22, keys arrive as RFC 4733 events, and the
real FastAGI server runs the real flows against PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from backend.settings import reset_settings
from ivr.agi.channel import AgiChannel
from ivr.caller import Timeouts
from ivr.fake_asterisk import prompt_id
from ivr.scripts import SCRIPTS
from ivr.server import AgiServer
from tests.conftest import IssuedCard, make_pin
from tests.e2e.conftest import CallTrace, E2EAsterisk
from tests.flows.helpers import pin_works, reports

pytestmark = pytest.mark.e2e

# What Asterisk's office-hours check and the handlers both believe the time is.
OPEN = "2026-11-27T10:00:00+08:00"  # a Friday morning
EVENING = "2026-11-27T20:00:00+08:00"


@dataclass
class Heard:
    """Every prompt the FastAGI server asked Asterisk to play, in order."""

    prompts: list[str] = field(default_factory=list)


@pytest.fixture
def heard(monkeypatch: pytest.MonkeyPatch) -> Heard:
    """Notes each prompt the server sends, then lets the real command go to Asterisk."""
    record = Heard()
    stream_file, get_data = AgiChannel.stream_file, AgiChannel.get_data
    until_key = AgiChannel.stream_file_until_key

    def noting_until_key(self: AgiChannel, sound: str, keys: str) -> str | None:
        record.prompts.append(prompt_id(sound))
        return until_key(self, sound, keys)

    def noting_stream(self: AgiChannel, sound: str) -> bool:
        record.prompts.append(prompt_id(sound))
        return stream_file(self, sound)

    def noting_get_data(
        self: AgiChannel, sound: str, timeout_ms: int, max_digits: int, **options: Any
    ) -> Any:
        record.prompts.append(prompt_id(sound))
        return get_data(self, sound, timeout_ms, max_digits, **options)

    monkeypatch.setattr(AgiChannel, "stream_file", noting_stream)
    monkeypatch.setattr(AgiChannel, "get_data", noting_get_data)
    monkeypatch.setattr(AgiChannel, "stream_file_until_key", noting_until_key)
    return record


@pytest.fixture
async def app(db: str, e2e_asterisk: E2EAsterisk) -> AsyncIterator[AgiServer]:
    """The real FastAGI server on the first address the dialplan tries."""
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=5000, entry_ms=6000))
    await server.start("127.0.0.1", e2e_asterisk.agi_ports[0])
    yield server
    await server.drain()
    assert not server.errors, server.errors


@pytest.fixture
def clock(e2e_asterisk: E2EAsterisk) -> Iterator[Any]:
    """Sets the moment for the handlers and for the dialplan's own office-hours check."""
    import datetime as dt

    def set_now(moment: str) -> None:
        os.environ["IVR_NOW_OVERRIDE"] = moment
        reset_settings()
        e2e_asterisk.set_clock(dt.datetime.fromisoformat(moment))

    yield set_now
    os.environ.pop("IVR_NOW_OVERRIDE", None)
    reset_settings()
    e2e_asterisk.set_clock(None)


async def dial(
    asterisk: E2EAsterisk, keys: str, number: str = "12333", limit_s: float = 120
) -> CallTrace:
    # SIPp blocks; the FastAGI server shares this event loop, so the call runs in a thread.
    return await asyncio.to_thread(asterisk.call, keys, number, limit_s)


def entry(text: str) -> str:
    """Keys for one entry, then time for the server to ask the next question."""
    return f"{text.replace('X', '*')}# wait:2"


def change_pin_keys(card: IssuedCard, old: str, new: str) -> str:
    return " ".join(
        [
            "wait:6 2 wait:2",  # after the welcome and the card menu: 2 change the PIN
            entry(card.digits),
            entry(old),
            entry(card.id_number),
            entry(new),
            entry(new),
            "wait:6",  # "changed, remember your new PIN"
        ]
    )


def loss_keys(card: IssuedCard, pin: str) -> str:
    return " ".join(
        [
            "wait:6 1 wait:2",  # after the welcome and the card menu: 1 report a loss
            entry(card.digits),
            entry(pin),
            entry(card.id_number),
            "wait:2 1",  # 1 confirms, over the confirmation prompt
            "wait:20",  # the reference, the written report to make, the repeat offer
        ]
    )


async def test_pin_change_then_loss_report_with_the_new_pin(
    app: AgiServer, e2e_asterisk: E2EAsterisk, issue: Any, heard: Heard
) -> None:
    """A phone changes the initial PIN, then reports the card lost with the new PIN."""
    card = await issue()
    new = make_pin()
    trace = await dial(e2e_asterisk, change_pin_keys(card, "123456", new))
    assert trace.result.answered, trace.result.summary()
    assert "pin-changed" in heard.prompts, heard.prompts
    assert await pin_works(card.digits, card.id_number, new)
    assert not await pin_works(card.digits, card.id_number, "123456")

    heard.prompts.clear()
    trace = await dial(e2e_asterisk, loss_keys(card, new))
    assert trace.result.answered, trace.result.summary()
    assert "loss-reported" in heard.prompts, heard.prompts
    stored = await reports(card.card_number)
    assert [(r.channel, r.status) for r in stored] == [("ivr", "active")]
    # The reference the caller heard is the one stored.
    at = heard.prompts.index("loss-reported") + 1
    spoken = "".join(p.removeprefix("digit-") for p in heard.prompts[at : at + 12])
    assert spoken == stored[0].reference


async def test_initial_pin_holder_reaches_the_agent_queue_in_office_hours(
    app: AgiServer, e2e_asterisk: E2EAsterisk, issue: Any, heard: Heard, clock: Any
) -> None:
    """Initial PIN, office hours: told why, 0 for an agent, and the agent's phone rings with
    the call id, the reason and the masked card."""
    from tests import sip_phones

    clock(OPEN)
    card = await issue()
    keys = " ".join(
        [
            "wait:2",
            entry(card.digits),
            entry("123456"),
            entry(card.id_number),
            "wait:4 0",  # told why at once, then the choices: 0 for an agent
            "wait:30",
        ]
    )
    with sip_phones.AgentPhone(e2e_asterisk.agent_port, talk_s=1.5, timeout=90) as agent_phone:
        trace = await dial(e2e_asterisk, keys, number="123332")
        agent = await asyncio.to_thread(agent_phone.result, 20)
    assert "loss-initial-pin-refused" in heard.prompts, heard.prompts
    assert heard.prompts[-1] == "agent-transfer"
    assert agent.answered
    assert agent.invite_headers.get("x-ivr-reason") == "initial-pin-loss-report"
    assert agent.invite_headers.get("x-ivr-card", "").endswith(card.digits[-4:])
    call_id = agent.invite_headers.get("x-ivr-call-id")
    assert call_id and any(w.startswith(f"queue {call_id}") for w in trace.whats())
    from backend.services.handoffs import find_handoff

    assert await find_handoff(call_id) is not None
    assert await reports(card.card_number) == []


async def test_initial_pin_holder_hears_the_hours_out_of_hours(
    app: AgiServer, e2e_asterisk: E2EAsterisk, issue: Any, heard: Heard, clock: Any
) -> None:
    """Initial PIN in the evening: told why and what to do instead, * declines, goodbye,
    hung up."""
    clock(EVENING)
    card = await issue()
    keys = " ".join(
        [
            "wait:2",
            entry(card.digits),
            entry("123456"),
            entry(card.id_number),
            "wait:4 *",  # told why at once, then the choices: * declines them
            "wait:20",
        ]
    )
    trace = await dial(e2e_asterisk, keys, number="123332")
    assert heard.prompts[-3:] == [
        "loss-initial-pin-refused",
        "loss-initial-pin-choices-closed",
        "goodbye",
    ]
    assert trace.result.ended_by == "far-end", trace.result.summary()
    # The handler said goodbye and hung up itself: the dialplan had nothing left to do.
    assert trace.whats() == ["start report-loss"]


async def test_stopped_fastagi_server_still_gets_an_apology(
    db: str, e2e_asterisk: E2EAsterisk, clock: Any
) -> None:
    """The app server was running and is stopped (drained): the caller hears the apology,
    then the hours and goodbye, and Asterisk hangs up."""
    server = AgiServer(SCRIPTS)
    await server.start("127.0.0.1", e2e_asterisk.agi_ports[0])
    await server.drain()
    clock(EVENING)
    trace = await dial(e2e_asterisk, "wait:40", limit_s=60)
    assert trace.result.ended_by == "far-end", trace.result.summary()
    whats = trace.whats()
    assert whats[:3] == ["start main", "agi failed", "fallback"]
    assert whats[3].startswith("apology") and "office-hours closed" in whats
    start, apology = trace.event("start"), trace.event("fallback")
    assert start is not None and apology is not None
    assert (apology.at - start.at).total_seconds() < 6


async def test_hang_up_in_the_middle_of_a_pin_change_changes_nothing(
    app: AgiServer, e2e_asterisk: E2EAsterisk, issue: Any, heard: Heard
) -> None:
    """The caller hangs up after keying the first new PIN: the old PIN still works."""
    card = await issue()
    new = make_pin()
    keys = " ".join(
        [
            "wait:6 2 wait:2",
            entry(card.digits),
            entry("123456"),
            entry(card.id_number),
            entry(new),
        ]
    )
    trace = await dial(e2e_asterisk, keys)
    assert trace.result.ended_by == "caller", trace.result.summary()
    assert "enter-new-pin-again" in heard.prompts
    assert "pin-changed" not in heard.prompts
    await asyncio.sleep(1)  # the server notices the hang-up and ends the call's work
    assert await pin_works(card.digits, card.id_number, "123456")
    assert not await pin_works(card.digits, card.id_number, new)


async def test_star_leaves_the_agent_queue_for_self_service(
    app: AgiServer, e2e_asterisk: E2EAsterisk, clock: Any, heard: Heard
) -> None:
    """Waiting for an agent (nobody answers), the caller presses * and is back at the
    welcome and card menu of the self-service."""
    clock(OPEN)
    trace = await dial(e2e_asterisk, "wait:8 0 wait:14 * wait:12")
    whats = trace.whats()
    assert any(w.startswith("queue ") for w in whats), whats
    assert "queue-exit" in whats, whats
    assert whats.count("start main") == 2, whats
    assert heard.prompts.count("welcome") == 2, heard.prompts


async def test_a_key_during_the_welcome_goes_straight_to_the_service(
    app: AgiServer, e2e_asterisk: E2EAsterisk, heard: Heard
) -> None:
    """A caller who knows the menu presses 2 half-way through the welcome: Asterisk cuts
    the welcome short and the card-number prompt follows, the card menu never played."""
    trace = await dial(e2e_asterisk, "wait:1.5 2 wait:3")
    assert trace.result.answered, trace.result.summary()
    assert heard.prompts[:2] == ["welcome", "enter-card-number"], heard.prompts
    assert "card-menu" not in heard.prompts
