"""Changing the PIN: success, wrong old PIN, every rule, locked cards, no match, races."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.outcomes import (
    Actor,
    Channel,
    Done,
    Locked,
    NoMatch,
    NotUsable,
    PinChanged,
    PinRejected,
    Proven,
    Stale,
    Verified,
    WrongPin,
)
from backend.pinrules import PinRule, broken_rule
from backend.services.change_pin import change_pin
from backend.services.counter import issue_replacement, reset_pin
from backend.services.report_loss import report_loss_by_staff
from backend.services.verify import prove_holder, verify_pin
from backend.settings import get_settings
from tests.backend.by_phone import change_by_phone
from tests.conftest import USED_SECRETS, IssuedCard, make_card_number, make_id_number, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]


def _call() -> Actor:
    return Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")


async def card_row(card_number: str) -> Any:
    """The card's PIN columns, read with SQL."""
    async with get_engine().connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT pin_hash, pin_is_initial, pin_changed_at, failed_attempts, locked"
                    " FROM cards WHERE card_number = :n"
                ),
                {"n": card_number},
            )
        ).one()


def _other_pin(*avoid: str) -> str:
    while True:
        pin = make_pin()
        if pin not in avoid:
            return pin


async def test_change_from_the_initial_pin(issue: Issue) -> None:
    """A new card's 123456 is replaced: the new PIN works, the old one no longer does."""
    card = await issue()
    new = make_pin()
    assert await change_by_phone(card.digits, card.id_number, "123456", new, _call()) == PinChanged(
        "A****" + card.card_number[-4:]
    )
    row = await card_row(card.card_number)
    assert not row.pin_is_initial
    assert row.pin_changed_at is not None
    verified = await verify_pin(card.digits, card.id_number, new, _call())
    assert isinstance(verified, Verified) and not verified.card.pin_is_initial
    assert await verify_pin(card.digits, card.id_number, "123456", _call()) == WrongPin(5)


async def test_wrong_old_pin_counts_and_changes_nothing(issue: Issue) -> None:
    """A wrong old PIN is a wrong PIN like any other: counted, and the PIN stays."""
    card = await issue(pin=make_pin())
    before = await card_row(card.card_number)
    wrong = _other_pin(card.pin)
    new = _other_pin(card.pin, wrong)
    assert await change_by_phone(card.digits, card.id_number, wrong, new, _call()) == WrongPin(5)
    after = await card_row(card.card_number)
    assert after.pin_hash == before.pin_hash
    assert after.failed_attempts == 1
    assert isinstance(await verify_pin(card.digits, card.id_number, card.pin, _call()), Verified)


def _suffix_holder() -> str:
    """An ID number whose last six characters would otherwise be an acceptable PIN."""
    while True:
        number = make_id_number()
        if number[-6:].isdigit() and broken_rule(number[-6:]) is None:
            return number


def _suffix_card() -> str:
    while True:
        number = make_card_number()
        if broken_rule(number[-6:]) is None:
            return number


@pytest.mark.parametrize("rule", list(PinRule))
async def test_each_rule_rejection_keeps_the_pin(issue: Issue, rule: PinRule) -> None:
    """A new PIN breaking any one rule is rejected with its code; the PIN is unchanged."""
    holder = make_id_number("19851107")
    if rule is PinRule.ID_SUFFIX:
        holder = _suffix_holder()
    card = await issue(pin=make_pin(), id_number=holder, card_number=_suffix_card())
    new = {
        PinRule.LENGTH: "58392",
        PinRule.INITIAL: "123456",
        PinRule.REPEATED: "777777",
        PinRule.SEQUENCE: "345678",
        PinRule.NEAR_SEQUENCE: "345679",
        PinRule.KEYPAD: "147258",
        PinRule.COMMON: "112233",
        PinRule.SAME_AS_OLD: card.pin,
        PinRule.BIRTH_DATE: "851107",
        PinRule.ID_SUFFIX: holder[-6:],
        PinRule.CARD_SUFFIX: card.card_number[-6:],
    }[rule]
    USED_SECRETS.add(new)
    before = await card_row(card.card_number)
    outcome = await change_by_phone(card.digits, card.id_number, card.pin, new, _call())
    assert outcome == PinRejected(rule)
    after = await card_row(card.card_number)
    assert (after.pin_hash, after.pin_changed_at, after.failed_attempts) == (
        before.pin_hash,
        before.pin_changed_at,
        0,
    )
    assert isinstance(await verify_pin(card.digits, card.id_number, card.pin, _call()), Verified)


async def test_a_locked_card_refuses_a_change(issue: Issue) -> None:
    """With the card locked, even the right old PIN cannot change it."""
    card = await issue(pin=make_pin())
    wrong = _other_pin(card.pin)
    for _ in range(6):
        await verify_pin(card.digits, card.id_number, wrong, _call())
    before = await card_row(card.card_number)
    new = _other_pin(card.pin, wrong)
    assert await change_by_phone(card.digits, card.id_number, card.pin, new, _call()) == Locked()
    assert (await card_row(card.card_number)).pin_hash == before.pin_hash


async def test_an_id_not_matching_the_card_is_no_match(issue: Issue) -> None:
    """Another holder's ID number gives NoMatch and changes nothing on either card."""
    card = await issue(pin=make_pin())
    other = await issue()
    before = await card_row(card.card_number)
    new = _other_pin(card.pin)
    assert await change_by_phone(card.digits, other.id_number, card.pin, new, _call()) == NoMatch()
    after = await card_row(card.card_number)
    assert (after.pin_hash, after.failed_attempts) == (before.pin_hash, 0)


async def test_concurrent_changes_cannot_both_apply(issue: Issue) -> None:
    """Ten simultaneous changes from one proof: exactly one applies, the others find the
    card no longer as proven (Stale); only the winner's PIN works afterwards."""
    card = await issue(pin=make_pin())
    actor = _call()
    proof = await prove_holder(card.digits, card.id_number, card.pin, actor, "change-pin")
    assert isinstance(proof, Proven)
    news: list[str] = []
    while len(news) < 10:
        news.append(_other_pin(card.pin, *news))
    answers = await asyncio.gather(
        *(change_pin(proof, new, actor, old_pin=card.pin, id_number=card.id_number) for new in news)
    )
    winners = [new for new, a in zip(news, answers, strict=True) if isinstance(a, PinChanged)]
    assert len(winners) == 1
    assert sum(a == Stale() for a in answers) == 9
    (winner,) = winners
    assert isinstance(await verify_pin(card.digits, card.id_number, winner, _call()), Verified)
    for pin in [card.pin, *news]:
        if pin != winner:
            answer = await verify_pin(card.digits, card.id_number, pin, _call())
            assert not isinstance(answer, Verified)


async def _proof(card: IssuedCard, actor: Actor) -> Proven:
    proof = await prove_holder(card.digits, card.id_number, card.pin, actor, "change-pin")
    assert isinstance(proof, Proven)
    return proof


async def test_a_proof_serves_only_its_actor_its_holder_and_a_few_minutes(issue: Issue) -> None:
    """An expired proof, another call's proof, or a proof used with another ID number is
    Stale: nothing hashed, nothing changed; the fresh one then works."""
    card = await issue(pin=make_pin())
    other = await issue()
    actor = _call()
    proof = await _proof(card, actor)
    new = _other_pin(card.pin)
    valid = dt.timedelta(seconds=get_settings().proof_valid_seconds)
    expired = dataclasses.replace(
        proof, proven_at=proof.proven_at - valid - dt.timedelta(seconds=1)
    )
    before = await card_row(card.card_number)
    attempts = [
        change_pin(expired, new, actor, old_pin=card.pin, id_number=card.id_number),
        change_pin(proof, new, _call(), old_pin=card.pin, id_number=card.id_number),
        change_pin(proof, new, actor, old_pin=card.pin, id_number=other.id_number),
    ]
    for attempt in attempts:
        assert await attempt == Stale()
    assert (await card_row(card.card_number)).pin_hash == before.pin_hash
    changed = await change_pin(proof, new, actor, old_pin=card.pin, id_number=card.id_number)
    assert isinstance(changed, PinChanged)
    assert isinstance(await verify_pin(card.digits, card.id_number, new, _call()), Verified)


async def test_a_card_locked_or_cancelled_after_the_proof_takes_no_change(issue: Issue) -> None:
    """Locked by wrong PINs after the proof: Locked; cancelled: NotUsable; given another PIN
    at the counter: Stale. The PIN stays as it is in each case."""
    locked_card = await issue(pin=make_pin())
    actor = _call()
    proof = await _proof(locked_card, actor)
    wrong = _other_pin(locked_card.pin)
    for _ in range(get_settings().lockout_limit):
        await verify_pin(locked_card.digits, locked_card.id_number, wrong, _call())
    new = _other_pin(locked_card.pin, wrong)
    kept = (await card_row(locked_card.card_number)).pin_hash
    args = {"old_pin": locked_card.pin, "id_number": locked_card.id_number}
    assert await change_pin(proof, new, actor, **args) == Locked()
    assert (await card_row(locked_card.card_number)).pin_hash == kept

    cancelled = await issue(pin=make_pin())
    proof = await _proof(cancelled, actor)
    clerk = Actor(Channel.COUNTER, f"clerk-{uuid.uuid4().hex[:8]}")
    await report_loss_by_staff(cancelled.card_number, cancelled.id_number, clerk, written=True)
    assert isinstance(
        await issue_replacement(cancelled.card_number, cancelled.id_number, clerk), Done
    )
    args = {"old_pin": cancelled.pin, "id_number": cancelled.id_number}
    assert await change_pin(proof, new, actor, **args) == NotUsable()

    reset = await issue(pin=make_pin())
    proof = await _proof(reset, actor)
    assert isinstance(await reset_pin(reset.card_number, reset.id_number, clerk), Done)
    args = {"old_pin": reset.pin, "id_number": reset.id_number}
    assert await change_pin(proof, new, actor, **args) == Stale()
    assert isinstance(await verify_pin(reset.digits, reset.id_number, "123456", _call()), Verified)
