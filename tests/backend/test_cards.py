"""Issuing cards and finding them: initial PIN, duplicates, shared digits, one kind of no-match."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.errors import DuplicateCard, InvalidInput, UnknownCard
from backend.masking import mask_id
from backend.outcomes import Actor, CardState, Channel, NoMatch, Verified, WrongPin
from backend.services.cards import card_status, check_holder, issue_card
from backend.services.counter import unlock
from backend.services.report_loss import report_loss_by_staff
from backend.services.verify import verify_pin
from tests.conftest import USED_SECRETS, IssuedCard, make_card_number, make_id_number, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]
OPERATOR = Actor(Channel.OPERATOR, "test-cards")


def _call() -> Actor:
    return Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")


async def scalar(sql: str, **params: Any) -> Any:
    """One value from the test database."""
    async with get_engine().connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def counts() -> tuple[int, int, int]:
    """Rows in cardholders, cards and audit_events."""
    return (
        await scalar("SELECT count(*) FROM cardholders"),
        await scalar("SELECT count(*) FROM cards"),
        await scalar("SELECT count(*) FROM audit_events"),
    )


async def test_new_card_starts_on_the_initial_pin(issue: Issue) -> None:
    """A card issued without a PIN is active, on 123456, unlocked, with no report."""
    card = await issue()
    view = await card_status(card.card_number)
    assert view.card_number == card.card_number
    assert view.state is CardState.ACTIVE
    assert view.pin_is_initial
    assert view.failed_attempts == 0
    assert view.attempts_left == 6
    assert not view.locked
    assert view.active_loss_report is None
    assert view.id_masked == mask_id(card.id_number)
    assert isinstance(await verify_pin(card.digits, card.id_number, "123456", _call()), Verified)


async def test_card_issued_with_a_pin_counts_as_enabled(issue: Issue) -> None:
    """A PIN given at issue is enabled: 123456 is then a wrong PIN."""
    pin = make_pin()
    card = await issue(pin=pin)
    view = await card_status(card.card_number)
    assert not view.pin_is_initial
    assert isinstance(await verify_pin(card.digits, card.id_number, pin, _call()), Verified)
    assert await verify_pin(card.digits, card.id_number, "123456", _call()) == WrongPin(5)


async def test_nothing_but_hashes_and_masks_are_stored(issue: Issue) -> None:
    """Neither the full ID number nor the PIN appears in the holder's or the card's row."""
    pin = make_pin()
    card = await issue(pin=pin)
    async with get_engine().connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT h::text || c::text FROM cards c JOIN cardholders h"
                    " ON h.id = c.holder_id WHERE c.card_number = :n"
                ),
                {"n": card.card_number},
            )
        ).scalar_one()
    assert card.id_number not in row
    assert pin not in row
    assert mask_id(card.id_number) in row


async def test_pin_breaking_a_rule_is_refused_at_issue(db: str) -> None:
    """Issuing with a PIN that breaks a rule raises and stores nothing."""
    before = await counts()
    with pytest.raises(InvalidInput) as info:
        await issue_card(make_card_number(), make_id_number(), "李四", OPERATOR, pin="345678")
    assert info.value.code == "pin-sequence"
    born = make_id_number("19900521")
    with pytest.raises(InvalidInput) as info:
        await issue_card(make_card_number(), born, "李四", OPERATOR, pin="900521")
    assert info.value.code == "pin-birth-date"
    USED_SECRETS.update({"345678", "900521"})
    assert await counts() == before


@pytest.mark.parametrize(
    ("card_number", "id_ok", "name", "code"),
    [
        ("A1234", True, "李四", "card-number"),
        ("A1234567８", True, "李四", "card-number"),
        ("ABC12345678", True, "李四", "card-number"),
        (None, False, "李四", "id-number"),
        (None, True, "  ", "name"),
        (None, True, "名" * 65, "name"),
    ],
)
async def test_malformed_input_is_refused(
    db: str, card_number: str | None, id_ok: bool, name: str, code: str
) -> None:
    """Bad card numbers, ID numbers and names raise InvalidInput and store nothing."""
    id_number = make_id_number()
    if not id_ok:
        id_number = id_number[:17] + ("0" if id_number[17] != "0" else "1")
        USED_SECRETS.add(id_number)
    before = await counts()
    with pytest.raises(InvalidInput) as info:
        await issue_card(card_number or make_card_number(), id_number, name, OPERATOR)
    assert info.value.code == code
    assert await counts() == before


async def test_duplicate_card_number_changes_nothing(issue: Issue) -> None:
    """A second card with a taken number raises DuplicateCard and leaves no holder behind."""
    card = await issue()
    before = await counts()
    with pytest.raises(DuplicateCard):
        await issue_card(card.card_number, make_id_number(), "王五", OPERATOR)
    with pytest.raises(DuplicateCard):
        await issue_card(card.card_number.lower(), card.id_number, card.name, OPERATOR)
    assert await counts() == before
    assert isinstance(await verify_pin(card.digits, card.id_number, "123456", _call()), Verified)


async def test_same_digits_twice_for_one_holder_is_a_duplicate(issue: Issue) -> None:
    """One holder cannot hold two cards whose digits are the same."""
    card = await issue()
    before = await counts()
    with pytest.raises(DuplicateCard):
        await issue_card("B" + card.digits, card.id_number, card.name, OPERATOR)
    assert await counts() == before


async def test_one_holder_two_cards(issue: Issue) -> None:
    """The same holder may hold two cards; each verifies with its own PIN."""
    holders_before = await scalar("SELECT count(*) FROM cardholders")
    first = await issue()
    second = await issue(id_number=first.id_number, pin=make_pin())
    assert await scalar("SELECT count(*) FROM cardholders") == holders_before + 1
    one = await verify_pin(first.digits, first.id_number, "123456", _call())
    two = await verify_pin(second.digits, second.id_number, second.pin, _call())
    assert isinstance(one, Verified) and one.card.card_number == first.card_number
    assert isinstance(two, Verified) and two.card.card_number == second.card_number


async def test_cards_sharing_digits_are_never_confused(issue: Issue) -> None:
    """A… and B… with the same digits for two holders: each answers only to its own holder."""
    digits = f"{random.randint(100_000_000, 999_999_999)}"
    pin_a, pin_b = make_pin(), make_pin()
    while pin_b == pin_a:
        pin_b = make_pin()
    a = await issue(card_number="A" + digits, pin=pin_a, name="赵一")
    b = await issue(card_number="B" + digits, pin=pin_b, name="钱二")
    assert a.digits == b.digits == digits

    got_a = await verify_pin(digits, a.id_number, pin_a, _call())
    got_b = await verify_pin(digits, b.id_number, pin_b, _call())
    assert isinstance(got_a, Verified) and got_a.card.card_number == a.card_number
    assert isinstance(got_b, Verified) and got_b.card.card_number == b.card_number

    # B's PIN against A's holder is a wrong PIN for A only.
    assert await verify_pin(digits, a.id_number, pin_b, _call()) == WrongPin(5)
    assert (await card_status(a.card_number)).failed_attempts == 1
    assert (await card_status(b.card_number)).failed_attempts == 0

    # Full card number with the other holder's ID: no match, through every staff door.
    staff = Actor(Channel.AGENT, "agent-cards")
    assert await report_loss_by_staff(a.card_number, b.id_number, staff) == NoMatch()
    assert await check_holder(b.card_number, b.name, a.id_number, staff) == NoMatch()
    assert await check_holder(b.card_number, a.name, b.id_number, staff) == NoMatch()
    assert await unlock(b.card_number, a.id_number, Actor(Channel.COUNTER, "clerk")) == NoMatch()
    verified = await check_holder(b.card_number, b.name, b.id_number, staff)
    assert isinstance(verified, Verified) and verified.card.card_number == b.card_number
    assert (await card_status(a.card_number)).active_loss_report is None


async def test_every_kind_of_mismatch_is_the_same_no_match(issue: Issue) -> None:
    """Unknown card, wrong ID and wrong digits all answer NoMatch() and count nothing."""
    card = await issue()
    other = await issue()
    unknown_digits = card.digits[::-1] if card.digits[::-1] != card.digits else "19283746"
    answers = [
        await verify_pin(unknown_digits, card.id_number, "123456", _call()),
        await verify_pin(card.digits, other.id_number, "123456", _call()),
        await verify_pin(other.digits, card.id_number, "123456", _call()),
        await verify_pin(card.digits, make_id_number(), "123456", _call()),
    ]
    assert answers == [NoMatch()] * 4
    for each in (card, other):
        assert (await card_status(each.card_number)).failed_attempts == 0


async def test_malformed_digits_or_id_raise_before_any_lookup(issue: Issue) -> None:
    """Keyed input that can never be right raises InvalidInput rather than NoMatch."""
    card = await issue()
    with pytest.raises(InvalidInput) as info:
        await verify_pin("1234", card.id_number, "123456", _call())
    assert info.value.code == "card-digits"
    with pytest.raises(InvalidInput) as info:
        await verify_pin("1234567８", card.id_number, "123456", _call())
    assert info.value.code == "card-digits"
    broken = card.id_number[:17] + ("1" if card.id_number[17] != "1" else "2")
    USED_SECRETS.add(broken)
    with pytest.raises(InvalidInput) as info:
        await verify_pin(card.digits, broken, "123456", _call())
    assert info.value.code == "id-number"


async def test_keypad_star_id_matches_the_x_id(issue: Issue) -> None:
    """A holder whose ID ends in X is found when the caller keys * for it."""
    while True:
        id_number = make_id_number()
        if id_number.endswith("X"):
            break
    card = await issue(id_number=id_number)
    keyed = id_number[:17] + "*"
    USED_SECRETS.update({keyed, id_number.lower()})
    assert isinstance(await verify_pin(card.digits, keyed, "123456", _call()), Verified)
    assert isinstance(await verify_pin(card.digits, id_number.lower(), "123456", _call()), Verified)


async def test_unknown_card_status(db: str) -> None:
    """Asking for an unknown card's status raises UnknownCard."""
    with pytest.raises(UnknownCard):
        await card_status(make_card_number())
