"""Change PIN by phone: every outcome a caller can hear."""

from __future__ import annotations

from typing import Any

from ivr.contract import NEXT_HANGUP, VAR_NEXT
from prompts.catalogue import Prompt, render
from tests.conftest import USED_SECRETS, make_id_number, make_pin
from tests.flows.conftest import Phone
from tests.flows.helpers import id_keys, pin_works


def change_keys(card: Any, old: str, new: str, again: str | None = None) -> list[str]:
    return [
        f"{card.digits}#",
        f"{old}#",
        id_keys(card.id_number),
        f"{new}#",
        f"{again or new}#",
    ]


async def test_change_from_initial_pin_via_menus(phone: Phone, issue: Any) -> None:
    """2 (change PIN), five entries: the PIN is changed and remembered."""
    card = await issue()
    new = make_pin()
    t = await phone.call("main", ["2", *change_keys(card, "123456", new)])
    assert t.heard[:2] == ["welcome", "card-menu"]
    assert [p for p, _ in t.keys][1:6] == [
        "enter-card-number",
        "enter-pin",
        "enter-id-number",
        "enter-new-pin-rules",
        "enter-new-pin-again",
    ]
    assert "enter-new-pin" not in t.heard
    assert "pin-changed" in t.heard
    assert await pin_works(card.digits, card.id_number, new)
    assert not await pin_works(card.digits, card.id_number, "123456")


async def test_change_pin_script_says_goodbye(phone: Phone, issue: Any) -> None:
    """The change-pin script on its own ends with goodbye and tells the dialplan to hang up."""
    card = await issue()
    new = make_pin()
    t = await phone.call("change-pin", change_keys(card, "123456", new))
    assert t.heard[-2:] == ["pin-changed", "goodbye"]
    assert t.variables[VAR_NEXT] == NEXT_HANGUP
    assert t.ended == "server-hangup"


async def test_new_pins_differ_then_entered_again(phone: Phone, issue: Any) -> None:
    """Two different new PINs: told so, asked again, and the second pair is taken."""
    card = await issue()
    first, second = make_pin(), make_pin()
    keys = [*change_keys(card, "123456", first, second), f"{second}#", f"{second}#"]
    t = await phone.call("change-pin", keys)
    assert "new-pins-differ" in t.heard
    assert "pin-changed" in t.heard
    assert await pin_works(card.digits, card.id_number, second)


async def test_new_pin_breaking_a_rule_is_named(phone: Phone, issue: Any) -> None:
    """A run like 234567, then 111111, then the initial PIN: each rule is named."""
    card = await issue()
    USED_SECRETS.update({"234567", "111111"})
    keys = [*change_keys(card, "123456", "234567")[:4], "111111#", "123456#"]
    t = await phone.call("change-pin", keys)
    heard = t.heard
    assert "pin-rule-sequence" in heard
    assert "pin-rule-repeated" in heard
    assert "pin-rule-initial" in heard
    assert [p for p, _ in t.keys][3:6] == ["enter-new-pin-rules", "enter-new-pin", "enter-new-pin"]
    assert heard.count("enter-new-pin-rules") == 1
    assert "too-many-tries" in heard
    assert await pin_works(card.digits, card.id_number, "123456")


async def test_weak_patterns_are_named(phone: Phone, issue: Any) -> None:
    """A keypad column pair, a near-run and a common PIN are each refused by name; the
    rules are said once, before the first new PIN."""
    card = await issue()
    USED_SECRETS.update({"147258", "123457", "121212"})
    keys = [*change_keys(card, "123456", "147258")[:4], "123457#", "121212#"]
    t = await phone.call("change-pin", keys)
    rules = [p for p in t.heard if p.startswith("pin-rule-")]
    assert rules == ["pin-rule-keypad", "pin-rule-near-sequence", "pin-rule-common"]
    assert t.heard.count("enter-new-pin-rules") == 1
    assert t.heard.index("enter-new-pin-rules") < t.heard.index("pin-rule-keypad")
    assert await pin_works(card.digits, card.id_number, "123456")


async def test_new_pin_of_wrong_length(phone: Phone, issue: Any) -> None:
    """Five digits for a new PIN: the six-digit rule is spoken."""
    card = await issue()
    USED_SECRETS.add("13579")
    new = make_pin()
    keys = [*change_keys(card, "123456", "13579")[:4], f"{new}#", f"{new}#"]
    t = await phone.call("change-pin", keys)
    assert "pin-rule-length" in t.heard
    assert "pin-changed" in t.heard


async def test_birth_date_pin_refused(phone: Phone, issue: Any) -> None:
    """The holder's birth date as yymmdd is refused by name."""
    card = await issue(id_number=make_id_number("19870412"))
    USED_SECRETS.add("870412")
    t = await phone.call("change-pin", [*change_keys(card, "123456", "870412")[:4], "!"])
    assert "pin-rule-birth-date" in t.heard


async def test_wrong_old_pin_says_when_the_card_locks_and_asks_it_again(
    phone: Phone, issue: Any
) -> None:
    """A wrong old PIN: "wrong PIN; five more wrong PINs lock the card", then only the PIN
    is asked again (card and ID kept), and the right one goes on to the new PIN."""
    card = await issue()
    USED_SECRETS.add("907132")
    new = make_pin()
    keys = [*change_keys(card, "907132", new)[:3], "123456#", f"{new}#", f"{new}#"]
    t = await phone.call("change-pin", keys)
    heard = t.heard
    at = heard.index("wrong-pin")
    assert heard[at : at + 4] == ["wrong-pin", "count-5", "wrong-pin-locks", "enter-pin-again"]
    assert [p for p, _ in t.keys] == [
        "enter-card-number",
        "enter-pin",
        "enter-id-number",
        "enter-pin-again",
        "enter-new-pin-rules",
        "enter-new-pin-again",
    ]
    assert "card-menu" not in heard
    assert await pin_works(card.digits, card.id_number, new)


async def test_locked_card_sent_to_counter(phone: Phone, issue: Any) -> None:
    """Six wrong PINs over six calls lock the card; the sixth caller hears it is locked."""
    card = await issue()
    USED_SECRETS.add("907133")
    for _ in range(5):
        await phone.call("change-pin", change_keys(card, "907133", "000000")[:3])
    t = await phone.call("change-pin", change_keys(card, "907133", "000000")[:3])
    assert "card-locked" in t.heard
    assert t.heard[-1] == "goodbye"
    t = await phone.call("change-pin", change_keys(card, "123456", make_pin()))
    assert "card-locked" in t.heard


async def test_card_and_id_not_matching(phone: Phone, issue: Any) -> None:
    """Someone else's ID: the same answer as an unknown card."""
    card = await issue()
    stranger = make_id_number()
    keys = [f"{card.digits}#", "123456#", id_keys(stranger)]
    t = await phone.call("change-pin", keys)
    assert "no-match" in t.heard
    t = await phone.call("change-pin", ["99999999#", "123456#", id_keys(card.id_number)])
    assert "no-match" in t.heard


async def test_id_check_digit_checked_first(phone: Phone, issue: Any) -> None:
    """A wrong check digit is caught at once and the ID asked again, before new PINs."""
    card = await issue()
    body = card.id_number[:17]
    wrong = body + ("0" if card.id_number[17] != "0" else "1")
    USED_SECRETS.add(wrong)
    new = make_pin()
    keys = [
        f"{card.digits}#",
        "123456#",
        id_keys(wrong),
        id_keys(card.id_number),
        f"{new}#",
        f"{new}#",
    ]
    t = await phone.call("change-pin", keys)
    heard = t.heard
    assert heard.index("id-number-invalid") < heard.index("enter-new-pin-rules")
    assert "pin-changed" in heard


async def test_star_in_an_entry_goes_back_to_the_card_menu(phone: Phone, issue: Any) -> None:
    """`*` means back in an entry as at a menu, and the card-number prompt says so: the
    caller hears they are back and the card menu is offered; nothing changed."""
    card = await issue()
    keys = ["2", f"{card.digits}#", "12*", "!"]
    t = await phone.call("main", keys)
    assert "星号" in render()[Prompt.ENTER_CARD_NUMBER]
    assert t.heard[-3:] == ["enter-pin", "back-to-menu", "card-menu"]
    assert await pin_works(card.digits, card.id_number, "123456")


async def test_silence_reprompts_then_gives_up(phone: Phone, clock: Any) -> None:
    """Silence three times at the card number: re-prompted, then too many tries, goodbye
    (out of hours, so no agent)."""
    from tests.flows.conftest import EVENING

    clock(EVENING)
    t = await phone.call("change-pin", ["-", "-", "-"])
    assert t.heard.count("no-input") == 2
    assert t.heard[-3:] == ["too-many-tries", "agent-hours", "goodbye"]
