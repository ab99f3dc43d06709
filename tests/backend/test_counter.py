"""Counter services: unlock, reset to the initial PIN, wrong holder, and their audit rows."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from backend.db.engine import get_engine
from backend.masking import mask_card
from backend.outcomes import (
    Actor,
    CardState,
    Channel,
    Done,
    Locked,
    NoMatch,
    Refused,
    Verified,
    WrongPin,
)
from backend.services.cards import card_status
from backend.services.counter import cancel_loss_report, issue_replacement, reset_pin, unlock
from backend.services.report_loss import report_loss_by_staff
from backend.services.verify import verify_pin
from tests.conftest import IssuedCard, make_card_number, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]


def _clerk() -> Actor:
    return Actor(Channel.COUNTER, f"clerk-{uuid.uuid4().hex[:12]}")


def _call() -> Actor:
    return Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")


async def audit_rows(actor: Actor) -> list[Any]:
    """The audit rows one actor left, oldest first."""
    async with get_engine().connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM audit_events WHERE actor = :a ORDER BY id"),
            {"a": actor.actor_id},
        )
        return list(result.all())


async def _locked(issue: Issue) -> IssuedCard:
    card = await issue(pin=make_pin())
    wrong = make_pin()
    while wrong == card.pin:
        wrong = make_pin()
    for _ in range(6):
        await verify_pin(card.digits, card.id_number, wrong, _call())
    assert (await card_status(card.card_number)).locked
    return card


async def test_unlock_a_locked_card(issue: Issue) -> None:
    """Unlocking clears the lock and the count; the holder's PIN works again."""
    card = await _locked(issue)
    done = await unlock(card.card_number, card.id_number, _clerk())
    assert isinstance(done, Done)
    assert not done.card.locked and done.card.failed_attempts == 0
    assert done.card.state is CardState.ACTIVE and done.card.attempts_left == 6
    assert isinstance(await verify_pin(card.digits, card.id_number, card.pin, _call()), Verified)


async def test_unlock_refuses_an_unlocked_card(issue: Issue) -> None:
    """Only a locked card can be unlocked."""
    card = await issue()
    assert await unlock(card.card_number, card.id_number, _clerk()) == Refused("not-locked")


async def test_reset_to_the_initial_pin(issue: Issue) -> None:
    """A forgotten PIN goes back to 123456, which clears the lock too."""
    card = await _locked(issue)
    done = await reset_pin(card.card_number, card.id_number, _clerk())
    assert isinstance(done, Done)
    assert done.card.pin_is_initial and not done.card.locked and done.card.failed_attempts == 0
    assert isinstance(await verify_pin(card.digits, card.id_number, "123456", _call()), Verified)
    assert await verify_pin(card.digits, card.id_number, card.pin, _call()) == WrongPin(5)


async def test_reset_refuses_a_cancelled_card(issue: Issue) -> None:
    """A replaced (cancelled) card keeps its PIN: reset is refused."""
    card = await issue(pin=make_pin())
    clerk = _clerk()
    await report_loss_by_staff(card.card_number, card.id_number, clerk, written=True)
    assert isinstance(await issue_replacement(card.card_number, card.id_number, clerk), Done)
    assert await reset_pin(card.card_number, card.id_number, clerk) == Refused("cancelled")
    assert not (await card_status(card.card_number)).pin_is_initial


async def test_wrong_holder_or_unknown_card_is_no_match(issue: Issue) -> None:
    """Every counter service answers NoMatch for another holder's ID or an unknown card."""
    card = await _locked(issue)
    other = await issue()
    clerk = _clerk()
    for service in (unlock, reset_pin, cancel_loss_report, issue_replacement):
        assert await service(card.card_number, other.id_number, clerk) == NoMatch()
        assert await service(make_card_number(), card.id_number, clerk) == NoMatch()
    view = await card_status(card.card_number)
    assert view.locked and not view.pin_is_initial
    assert await verify_pin(card.digits, card.id_number, card.pin, _call()) == Locked()


async def test_every_counter_action_is_audited(issue: Issue) -> None:
    """Each action writes a row with the channel, actor, masked card and outcome."""
    card = await _locked(issue)
    other = await issue()
    clerk = _clerk()
    await unlock(card.card_number, card.id_number, clerk)
    await unlock(card.card_number, card.id_number, clerk)
    await reset_pin(card.card_number, card.id_number, clerk)
    await unlock(card.card_number, other.id_number, clerk)
    await cancel_loss_report(card.card_number, card.id_number, clerk)
    await report_loss_by_staff(card.card_number, card.id_number, clerk, written=True)
    await cancel_loss_report(card.card_number, card.id_number, clerk)
    masked = mask_card(card.card_number)
    got = [
        (r.channel, r.actor, r.card_masked, r.action, r.outcome) for r in await audit_rows(clerk)
    ]
    expected_outcomes = [
        ("unlock", "done"),
        ("unlock", "refused-not-locked"),
        ("reset-pin", "done"),
        ("unlock", "no-match"),
        ("cancel-loss-report", "refused-no-active-report"),
        ("written-loss-report", "reported"),
        ("cancel-loss-report", "done"),
    ]
    assert got == [
        ("counter", clerk.actor_id, masked, action, outcome)
        for action, outcome in expected_outcomes
    ]
