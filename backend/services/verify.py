"""Proving card, holder and PIN, with every guess counted before it is checked.

`prove_holder` is the one step that checks a PIN. In order:

1. One transaction reserves the identity attempts (backend.services.identity), looks the
   holder up, and, when card and ID number match, gives those back and reserves a PIN
   attempt on the card: one conditional UPDATE adding 1 to `failed_attempts` only while
   the card is active, unlocked and under the limit, locking it when this attempt is the
   last one, and returning the PIN hash to check against. No match and a card that
   refuses the reservation are answered here, without any argon2 work.
2. argon2 checks the PIN, outside any transaction. Only reserved guesses get here, so at
   most `lockout_limit` guesses are hashed between two successes, however many arrive
   at once; a crash or hang-up now leaves the attempt counted. A check refused at once
   because hashing is busy gives its attempt back: nothing was checked.
3. One transaction settles the guess. A right PIN gives its attempt back with a
   conditional UPDATE `WHERE id AND pin_hash = <hash checked> AND status = 'active'` that
   resets the count, and clears a lock only when its own reservation set it. A wrong PIN
   stays counted.

Once a card is locked, every guess is answered `Locked` and audited "locked" in the same
way whatever the PIN, and nothing is hashed. A guess reserved before the lock but
settled after another guess locked the card is answered `Locked` and audited
"locked-meanwhile", right or wrong alike; a card whose PIN changed or that was cancelled
while a guess was checked is audited "changed-meanwhile", right or wrong alike. The audit
trail therefore never tells which of the refused guesses was the PIN.

A success returns `Proven`; use cases (change_pin, report_loss) take it and apply their
own change with one conditional UPDATE on the card as proven.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Update, case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import secrethash
from backend.db.tables import cards
from backend.masking import mask_card
from backend.officehours import current_time
from backend.outcomes import (
    Actor,
    Locked,
    NoMatch,
    NotUsable,
    Proven,
    ProveOutcome,
    Stale,
    TooManyTries,
    Verified,
    VerifyOutcome,
    WrongPin,
)
from backend.services import common, identity
from backend.settings import get_settings


@dataclass(frozen=True)
class _PinAttempt:
    """One reserved PIN attempt: the hash to check and what the reservation did."""

    card_id: int
    card_number: str
    pin_hash: str
    number: int  # this attempt's place in the count, 1 to the limit
    locked_it: bool  # this attempt was the last one and locked the card
    locked_at: dt.datetime | None


async def _reserve_pin_attempt(
    conn: AsyncConnection, card_id: int, card_number: str
) -> _PinAttempt | None:
    limit = get_settings().lockout_limit
    counted = cards.c.failed_attempts + 1
    reserved = (
        await conn.execute(
            update(cards)
            .where(
                cards.c.id == card_id,
                cards.c.status == "active",
                cards.c.locked.is_(False),
                cards.c.failed_attempts < limit,
            )
            .values(
                failed_attempts=counted,
                locked=counted >= limit,
                locked_at=case((counted >= limit, common.dt_now_sql()), else_=None),
            )
            .returning(cards.c.pin_hash, cards.c.failed_attempts, cards.c.locked, cards.c.locked_at)
        )
    ).first()
    if reserved is None:
        return None
    return _PinAttempt(
        card_id=card_id,
        card_number=card_number,
        pin_hash=reserved.pin_hash,
        number=reserved.failed_attempts,
        locked_it=reserved.locked,
        locked_at=reserved.locked_at,
    )


async def _refusal(conn: AsyncConnection, card_id: int) -> NotUsable | Locked:
    """The card refused a PIN attempt: cancelled, or locked. A card at the limit but not
    locked (the limit was lowered since) is locked now, as the limit says it should be."""
    await conn.execute(
        update(cards)
        .where(
            cards.c.id == card_id,
            cards.c.status == "active",
            cards.c.locked.is_(False),
            cards.c.failed_attempts >= get_settings().lockout_limit,
        )
        .values(locked=True, locked_at=common.dt_now_sql())
    )
    status = (await conn.execute(select(cards.c.status).where(cards.c.id == card_id))).scalar_one()
    return NotUsable() if status == "cancelled" else Locked()


def _settle_condition(attempt: _PinAttempt) -> ColumnElement[bool]:
    """The card as the attempt left it: same PIN, active, and not locked by anyone else."""
    own_lock = (
        cards.c.locked.is_(True) & (cards.c.locked_at == attempt.locked_at)
        if attempt.locked_it
        else cards.c.locked.is_(False)
    )
    return (
        (cards.c.id == attempt.card_id)
        & (cards.c.pin_hash == attempt.pin_hash)
        & (cards.c.status == "active")
        & (cards.c.locked.is_(False) | own_lock)
    )


async def _settle_success(conn: AsyncConnection, attempt: _PinAttempt) -> bool:
    settled = await conn.execute(
        update(cards)
        .where(_settle_condition(attempt))
        .values(failed_attempts=0, locked=False, locked_at=None)
        .returning(cards.c.id)
    )
    return settled.first() is not None


async def _give_back_unchecked(attempt: _PinAttempt) -> None:
    """Undo a reservation whose PIN was never checked, if the card is as it left it."""
    async with common.transaction() as conn:
        await conn.execute(
            update(cards)
            .where(_settle_condition(attempt), cards.c.failed_attempts > 0)
            .values(failed_attempts=cards.c.failed_attempts - 1, locked=False, locked_at=None)
        )


async def _judge(
    conn: AsyncConnection, attempt: _PinAttempt
) -> tuple[WrongPin | Locked | NotUsable, str, dict[str, int]] | None:
    """What changed on the card while the attempt was checked, as the answer and audit
    outcome every guess gets alike, right or wrong; None when nothing did."""
    now = (
        await conn.execute(
            select(cards.c.status, cards.c.pin_hash, cards.c.locked, cards.c.failed_attempts)
            .where(cards.c.id == attempt.card_id)
            .with_for_update()
        )
    ).one()
    if now.status == "cancelled":
        return NotUsable(), "changed-meanwhile", {}
    if now.pin_hash != attempt.pin_hash:
        if now.locked:
            return Locked(), "changed-meanwhile", {}
        left = max(get_settings().lockout_limit - now.failed_attempts, 1)
        return WrongPin(attempts_left=left), "changed-meanwhile", {}
    own = (
        await conn.execute(select(cards.c.id).where(_settle_condition(attempt)))
    ).first() is not None
    if not own:
        return Locked(), "locked-meanwhile", {}
    return None


async def _settle(
    attempt: _PinAttempt, right: bool, actor: Actor, action: str
) -> Proven | WrongPin | Locked | NotUsable:
    masked = mask_card(attempt.card_number)
    async with common.transaction() as conn:
        if right and await _settle_success(conn, attempt):
            return await _proven(conn, attempt, actor, action)
        judged = await _judge(conn, attempt)
        if judged is None and right:
            # The card went back to how the attempt left it between the two statements;
            # the row is locked now, so this settles it.
            if await _settle_success(conn, attempt):
                return await _proven(conn, attempt, actor, action)
            judged = Locked(), "locked-meanwhile", {}
        if judged is None:
            if attempt.locked_it:
                judged = Locked(), "wrong-pin-locked", {}
            else:
                left = get_settings().lockout_limit - attempt.number
                judged = WrongPin(attempts_left=left), "wrong-pin", {"attempts_left": left}
        outcome, said, detail = judged
        await common.audit(conn, actor, action, said, masked, detail)
        return outcome


async def _proven(conn: AsyncConnection, attempt: _PinAttempt, actor: Actor, action: str) -> Proven:
    fresh = await common.find_by_id(conn, attempt.card_id)
    assert fresh is not None
    await common.audit(conn, actor, action, "proven", mask_card(fresh.card_number))
    return Proven(
        card=common.view(fresh),
        actor=actor,
        proven_at=current_time(),
        pin_hash=attempt.pin_hash,
        id_hash=fresh.id_hash,
    )


async def prove_holder(
    card_digits: str,
    id_number: str,
    pin: str,
    actor: Actor,
    action: str,
    caller_number: str | None = None,
) -> ProveOutcome:
    """Card digits, ID number and PIN proven together, or why not. Malformed card digits
    or ID numbers raise InvalidInput before anything is counted."""
    digits = common.check_card_digits(card_digits)
    holder_hash = common.id_hash(common.check_id_number(id_number))
    keyed = mask_card(digits)
    wanted = identity.budgets(actor, digits, caller_number=caller_number)
    async with common.transaction() as conn:
        held = await identity.reserve(conn, wanted, actor, action, keyed)
        if isinstance(held, TooManyTries):
            return held
        row = await common.find_by_holder(conn, digits, holder_hash)
        if row is None:
            await common.audit(conn, actor, action, "no-match", keyed)
            await identity.count_failure(conn, held, actor, keyed)
            return NoMatch()
        await identity.give_back(conn, held)
        attempt = await _reserve_pin_attempt(conn, row.id, row.card_number)
        if attempt is None:
            refusal = await _refusal(conn, row.id)
            said = "not-usable" if isinstance(refusal, NotUsable) else "locked"
            await common.audit(conn, actor, action, said, mask_card(row.card_number))
            return refusal
    try:
        right = await secrethash.pin_matches(attempt.pin_hash, pin)
    except secrethash.HashingBusy:
        # Refused before any hashing: the guess was not checked, so it does not count.
        await _give_back_unchecked(attempt)
        raise
    return await _settle(attempt, right, actor, action)


def claim_proven(proof: Proven) -> Update:
    """The UPDATE a use case applies to the card as it was proven: the same PIN hash, still
    active and unlocked, its count reset. The use case adds its own values and RETURNING;
    no row back means the card changed since (see `proof_refusal`)."""
    return (
        update(cards)
        .where(
            cards.c.id == proof.card_id,
            cards.c.pin_hash == proof.pin_hash,
            cards.c.status == "active",
            cards.c.locked.is_(False),
        )
        .values(failed_attempts=0)
    )


def proof_is_fresh(proof: Proven, actor: Actor) -> bool:
    """A proof serves the actor who gave it, for `proof_valid_seconds`."""
    age = current_time() - proof.proven_at
    valid = dt.timedelta(seconds=get_settings().proof_valid_seconds)
    return proof.actor == actor and dt.timedelta(0) <= age <= valid


async def proof_refusal(
    conn: AsyncConnection, proof: Proven
) -> tuple[Locked | NotUsable | Stale, str]:
    """Why a proven card no longer takes a use case's change (its conditional UPDATE found
    nothing): cancelled, locked since, or another PIN since; with the audit outcome."""
    now = (
        await conn.execute(
            select(cards.c.status, cards.c.locked, cards.c.pin_hash).where(
                cards.c.id == proof.card_id
            )
        )
    ).one()
    if now.status == "cancelled":
        return NotUsable(), "not-usable"
    if now.pin_hash != proof.pin_hash:
        return Stale(), "changed-meanwhile"
    return Locked(), "locked"


async def verify_pin(
    card_digits: str,
    id_number: str,
    pin: str,
    actor: Actor,
    caller_number: str | None = None,
) -> VerifyOutcome:
    """The caller proves card, holder and PIN; the answer carries the card's status."""
    outcome = await prove_holder(card_digits, id_number, pin, actor, "verify", caller_number)
    return Verified(outcome.card) if isinstance(outcome, Proven) else outcome
