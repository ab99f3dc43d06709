"""Wrong-PIN lockout: the count per card across calls, the limit, and concurrent attempts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.outcomes import Actor, CardState, Channel, Locked, Verified, WrongPin
from backend.services.cards import card_status
from backend.services.verify import verify_pin
from backend.settings import reset_settings
from tests.conftest import IssuedCard, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]


def _call() -> Actor:
    return Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")


async def card_row(card_number: str) -> Any:
    """The card's lockout columns, read with SQL."""
    async with get_engine().connect() as conn:
        return (
            await conn.execute(
                text("SELECT failed_attempts, locked, locked_at FROM cards WHERE card_number = :n"),
                {"n": card_number},
            )
        ).one()


def _wrong_pin_for(card: IssuedCard) -> str:
    while True:
        pin = make_pin()
        if pin != card.pin:
            return pin


@pytest.fixture
def lockout_limit_3(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The lockout limit set to 3 through IVR_LOCKOUT_LIMIT, restored afterwards."""
    monkeypatch.setenv("IVR_LOCKOUT_LIMIT", "3")
    reset_settings()
    yield 3
    monkeypatch.undo()
    reset_settings()


async def test_wrong_pins_count_down_and_lock_at_the_limit(issue: Issue) -> None:
    """Each wrong PIN lowers attempts_left from 5 to 1; the sixth locks the card."""
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    for left in (5, 4, 3, 2, 1):
        assert await verify_pin(card.digits, card.id_number, wrong, _call()) == WrongPin(left)
        assert (await card_row(card.card_number)).failed_attempts == 6 - left
    assert await verify_pin(card.digits, card.id_number, wrong, _call()) == Locked()
    row = await card_row(card.card_number)
    assert row.failed_attempts == 6
    assert row.locked
    assert row.locked_at is not None
    view = await card_status(card.card_number)
    assert view.state is CardState.LOCKED
    assert view.attempts_left == 0


async def test_a_right_pin_resets_the_count(issue: Issue) -> None:
    """Three wrong PINs, then the right one: the count is back to zero."""
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    for _ in range(3):
        await verify_pin(card.digits, card.id_number, wrong, _call())
    assert (await card_row(card.card_number)).failed_attempts == 3
    verified = await verify_pin(card.digits, card.id_number, card.pin, _call())
    assert isinstance(verified, Verified)
    assert verified.card.failed_attempts == 0
    assert (await card_row(card.card_number)).failed_attempts == 0
    assert await verify_pin(card.digits, card.id_number, wrong, _call()) == WrongPin(5)


async def test_a_locked_card_refuses_the_right_pin(issue: Issue) -> None:
    """Once locked, even the right PIN answers Locked and the count no longer moves."""
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    for _ in range(6):
        await verify_pin(card.digits, card.id_number, wrong, _call())
    for pin in (card.pin, wrong):
        assert await verify_pin(card.digits, card.id_number, pin, _call()) == Locked()
    row = await card_row(card.card_number)
    assert (row.failed_attempts, row.locked) == (6, True)


async def test_the_count_persists_across_calls(issue: Issue) -> None:
    """Wrong PINs from different calls add up on the card; hanging up does not reset it."""
    card = await issue()
    wrong = _wrong_pin_for(card)
    callers = [Actor(Channel.IVR, f"call-{n}-{uuid.uuid4().hex[:8]}") for n in range(6)]
    answers = [await verify_pin(card.digits, card.id_number, wrong, c) for c in callers]
    assert answers == [WrongPin(5), WrongPin(4), WrongPin(3), WrongPin(2), WrongPin(1), Locked()]
    assert await verify_pin(card.digits, card.id_number, "123456", _call()) == Locked()


async def test_the_limit_is_configurable(issue: Issue, lockout_limit_3: int) -> None:
    """With IVR_LOCKOUT_LIMIT=3 the third wrong PIN locks the card."""
    card = await issue(pin=make_pin())
    assert (await card_status(card.card_number)).attempts_left == lockout_limit_3
    wrong = _wrong_pin_for(card)
    assert await verify_pin(card.digits, card.id_number, wrong, _call()) == WrongPin(2)
    assert await verify_pin(card.digits, card.id_number, wrong, _call()) == WrongPin(1)
    assert await verify_pin(card.digits, card.id_number, wrong, _call()) == Locked()
    row = await card_row(card.card_number)
    assert (row.failed_attempts, row.locked) == (3, True)
    assert await verify_pin(card.digits, card.id_number, card.pin, _call()) == Locked()


async def test_concurrent_wrong_pins_never_pass_the_limit(issue: Issue) -> None:
    """200 simultaneous wrong PINs record exactly six failures, lock the card, and stay
    locked. A guess told it has tries left was counted with that many left; a guess still
    being checked when the sixth locked the card is told Locked."""
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    answers = await asyncio.gather(
        *(verify_pin(card.digits, card.id_number, wrong, _call()) for _ in range(200))
    )
    wrong_pins = sorted(a.attempts_left for a in answers if isinstance(a, WrongPin))
    assert len(set(wrong_pins)) == len(wrong_pins) and set(wrong_pins) <= {1, 2, 3, 4, 5}
    assert sum(isinstance(a, Locked) for a in answers) == 200 - len(wrong_pins)
    row = await card_row(card.card_number)
    assert row.failed_attempts == 6
    assert row.locked
    assert await verify_pin(card.digits, card.id_number, card.pin, _call()) == Locked()


async def test_concurrent_right_and_wrong_pins_stay_within_the_limit(issue: Issue) -> None:
    """Right and wrong PINs racing each other never push the count past the limit."""
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    pins = [card.pin if n % 4 == 0 else wrong for n in range(40)]
    answers = await asyncio.gather(
        *(verify_pin(card.digits, card.id_number, pin, _call()) for pin in pins)
    )
    row = await card_row(card.card_number)
    assert 0 <= row.failed_attempts <= 6
    assert row.locked == (row.failed_attempts == 6)
    assert all(isinstance(a, Verified | WrongPin | Locked) for a in answers)
