"""The welcome, the menus, card status and the agent key."""

from __future__ import annotations

from typing import Any

from ivr.contract import NEXT_AGENT, VAR_AGENT_REASON, VAR_NEXT
from tests.conftest import make_pin
from tests.flows.conftest import EVENING, LUNCH, OPEN, Phone
from tests.flows.helpers import id_keys


async def test_invalid_key_says_the_tries_left(phone: Phone) -> None:
    """5 is not offered: "wrong key, two more tries", then the menu again."""
    t = await phone.call("main", ["5", "!"])
    assert t.heard == [
        "welcome",
        "card-menu",
        "invalid-key",
        "tries-left",
        "count-2",
        "times",
        "card-menu",
    ]


async def test_zero_reaches_agent_in_hours(phone: Phone, clock: Any) -> None:
    """0 at the card menu in office hours: the call goes to the agent queue."""
    clock(OPEN)
    t = await phone.call("main", ["0"])
    assert t.heard[-1] == "agent-transfer"
    assert t.variables[VAR_NEXT] == NEXT_AGENT
    assert t.variables[VAR_AGENT_REASON] == "caller-asked"


async def test_zero_out_of_hours_tells_hours_and_offers_menu(phone: Phone, clock: Any) -> None:
    """0 at lunchtime: the hours are told and the card menu is offered again."""
    clock(LUNCH)
    t = await phone.call("main", ["0", "!"])
    assert t.heard[-2:] == ["agent-hours", "card-menu"]


async def test_the_welcome_leads_to_the_card_menu(phone: Phone) -> None:
    """No menu before the card services: the welcome, then the card menu, whose keys
    are the services and an agent."""
    t = await phone.call("main", ["!"])
    assert t.heard == ["welcome", "card-menu"]


async def test_retries_out_goes_to_agent_in_hours(phone: Phone, clock: Any) -> None:
    """Three bad keys at the card menu in office hours: an agent takes over."""
    clock(OPEN)
    t = await phone.call("main", ["7", "-", "8"])
    assert "too-many-tries" in t.heard
    assert t.variables[VAR_NEXT] == NEXT_AGENT
    assert t.variables[VAR_AGENT_REASON] == "retries-exhausted"


async def test_retries_out_at_night_says_goodbye(phone: Phone, clock: Any) -> None:
    """Three bad keys at night: a polite goodbye."""
    clock(EVENING)
    t = await phone.call("main", ["7", "-", "8"])
    assert t.heard[-3:] == ["too-many-tries", "agent-hours", "goodbye"]
    assert t.ended == "server-hangup"


async def test_card_status_in_words(phone: Phone, issue: Any) -> None:
    """3 in card services: after card, ID and PIN, the status and PIN state are spoken."""
    pin = make_pin()
    card = await issue(pin=pin)
    keys = ["3", f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "!"]
    t = await phone.call("main", keys)
    at = t.heard.index("status-intro")
    assert t.heard[at : at + 3] == ["status-intro", "status-active", "status-pin-enabled"]


async def test_status_of_a_reported_card(phone: Phone, issue: Any) -> None:
    """A card reported lost by phone is "reported lost (temporary)"."""
    pin = make_pin()
    card = await issue(pin=pin)
    await phone.call("report-loss", [f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "1"])
    keys = ["3", f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "!"]
    t = await phone.call("main", keys)
    assert "status-lost-temporary" in t.heard
