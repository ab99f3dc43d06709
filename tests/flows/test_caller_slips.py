"""What a caller who slips, or who is done, hears next: one order of entries everywhere,
a word before every return to a menu, and the menu again after tries run out at night."""

from __future__ import annotations

from typing import Any

from ivr.contract import NEXT_HANGUP, VAR_NEXT
from tests.conftest import make_id_number, make_pin
from tests.flows.conftest import EVENING, Phone
from tests.flows.helpers import id_keys, pin_works, reports

SEED_ORDER = ["enter-card-number", "enter-pin", "enter-id-number"]


async def test_every_service_asks_card_pin_id_in_that_order(phone: Phone, issue: Any) -> None:
    """Loss report (1), change PIN (2) and status (3) ask card, PIN, ID: the order
    cardholders are told."""
    pin = make_pin()
    card = await issue(pin=pin)
    entries = [f"{card.digits}#", f"{pin}#", id_keys(card.id_number)]
    for service in "123":
        t = await phone.call("main", [service, *entries, "!"])
        assert [p for p, _ in t.keys][1:4] == SEED_ORDER, service


async def test_after_a_service_the_caller_is_told_how_to_go_on(phone: Phone, issue: Any) -> None:
    """After the status is heard: "another service, press *; or hang up"; * returns to
    the card menu, silence ends the call with goodbye."""
    pin = make_pin()
    card = await issue(pin=pin)
    entries = [f"{card.digits}#", f"{pin}#", id_keys(card.id_number)]
    t = await phone.call("main", ["3", *entries, "*", "!"])
    assert t.heard[-2:] == ["after-service", "card-menu"]
    t = await phone.call("main", ["3", *entries, "-"])
    assert t.heard[-2:] == ["after-service", "goodbye"]
    assert t.variables[VAR_NEXT] == NEXT_HANGUP


async def test_a_refusal_is_followed_by_a_word_then_the_menu(phone: Phone, issue: Any) -> None:
    """Card and ID that do not match three times: told so each time, then "back to the
    menu" and the card menu, not silence."""
    card = await issue()
    stranger = make_id_number()
    wrong = [f"{card.digits}#", id_keys(stranger)]
    keys = ["2", f"{card.digits}#", "123456#", id_keys(stranger), *wrong, *wrong, "!"]
    t = await phone.call("main", keys)
    assert t.heard.count("no-match") == 3
    assert t.heard[-2:] == ["back-to-menu", "card-menu"]


async def test_cancelled_report_returns_to_the_menu_with_a_word(phone: Phone, issue: Any) -> None:
    """* at the loss confirmation: "cancelled", "back to the menu", the card menu."""
    pin = make_pin()
    card = await issue(pin=pin)
    keys = ["1", f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "*", "!"]
    t = await phone.call("main", keys)
    assert t.heard[-3:] == ["loss-cancelled", "back-to-menu", "card-menu"]
    assert await reports(card.card_number) == []


async def test_tries_running_out_at_night_return_to_the_menu(
    phone: Phone, issue: Any, clock: Any
) -> None:
    """Three bad card numbers at night inside a service: too many tries, the agents' hours,
    then back to the card menu instead of hanging up."""
    clock(EVENING)
    t = await phone.call("main", ["2", "1#", "2#", "3#", "!"])
    assert t.heard[-4:] == ["too-many-tries", "agent-hours", "back-to-menu", "card-menu"]


async def test_declining_the_agent_returns_to_the_menu(
    phone: Phone, issue: Any, clock: Any
) -> None:
    """Initial PIN at night, the caller presses * at the choices: back to the card menu
    with a word, card untouched."""
    clock(EVENING)
    card = await issue()
    keys = ["1", f"{card.digits}#", "123456#", id_keys(card.id_number), "*", "!"]
    t = await phone.call("main", keys)
    assert t.heard[-2:] == ["back-to-menu", "card-menu"]
    assert await pin_works(card.digits, card.id_number, "123456")


async def test_the_welcome_can_be_cut_short_by_a_menu_key(phone: Phone) -> None:
    """The welcome is sent as an interruptible prompt offering the card menu's keys."""
    t = await phone.call("main", ["!"])
    assert t.commands[0] == 'STREAM FILE ivr12333/welcome "1230"'
