"""Checking a card's PIN, with the lockout decided by the database.

Wrong PINs are counted per card across calls. The count and the lock are one conditional
UPDATE, so any number of concurrent attempts can never pass the limit; a right PIN resets
the count only if the card is still unlocked and its PIN unchanged since it was read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Row, case, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import secrethash
from backend.db.tables import cards
from backend.masking import mask_card
from backend.outcomes import Actor, Locked, NoMatch, NotUsable, Verified, VerifyOutcome, WrongPin
from backend.services import common
from backend.settings import get_settings

# Runs inside the success transaction once the PIN is known right; returns the outcome.
OnSuccess = Callable[[AsyncConnection, Row[Any]], Awaitable[Any]]


async def _count_wrong_pin(row: Row[Any], actor: Actor, action: str) -> WrongPin | Locked:
    limit = get_settings().lockout_limit
    masked = mask_card(row.card_number)
    async with common.transaction() as conn:
        counted = (
            await conn.execute(
                update(cards)
                .where(cards.c.id == row.id, cards.c.locked.is_(False))
                .values(
                    failed_attempts=cards.c.failed_attempts + 1,
                    locked=cards.c.failed_attempts + 1 >= limit,
                    locked_at=case(
                        (cards.c.failed_attempts + 1 >= limit, common.dt_now_sql()),
                        else_=None,
                    ),
                )
                .returning(cards.c.failed_attempts, cards.c.locked)
            )
        ).first()
        if counted is None or counted.locked:
            outcome: WrongPin | Locked = Locked()
            await common.audit(conn, actor, action, "wrong-pin-locked", masked)
        else:
            outcome = WrongPin(attempts_left=limit - counted.failed_attempts)
            await common.audit(
                conn, actor, action, "wrong-pin", masked, {"attempts_left": outcome.attempts_left}
            )
    return outcome


async def check_pin(
    card_digits: str,
    id_number: str,
    pin: str,
    actor: Actor,
    action: str,
    on_success: OnSuccess,
    *,
    success_values: dict[str, Any] | None = None,
) -> Any:
    """Verify card, holder and PIN; on success run `on_success` in the same transaction that
    resets the failure count (and applies `success_values` to the card row)."""
    digits = common.check_card_digits(card_digits)
    holder = common.check_id_number(id_number)
    async with common.engine().connect() as conn:
        row = await common.find_by_holder(conn, digits, common.id_hash(holder))
    if row is None:
        await common.audit_alone(actor, action, "no-match", mask_card(digits))
        return NoMatch()
    masked = mask_card(row.card_number)
    if row.status == "cancelled":
        await common.audit_alone(actor, action, "not-usable", masked)
        return NotUsable()
    if row.locked:
        await common.audit_alone(actor, action, "locked", masked)
        return Locked()
    if not await secrethash.pin_matches(row.pin_hash, pin):
        return await _count_wrong_pin(row, actor, action)
    async with common.transaction() as conn:
        settled = (
            await conn.execute(
                update(cards)
                .where(
                    cards.c.id == row.id,
                    cards.c.locked.is_(False),
                    cards.c.status == "active",
                    cards.c.pin_hash == row.pin_hash,
                )
                .values(failed_attempts=0, **(success_values or {}))
                .returning(cards.c.id)
            )
        ).first()
        if settled is not None:
            return await on_success(conn, row)
    # Locked, cancelled or given a new PIN by someone else between our read and now. The
    # PIN was right when read, so this is not counted as a wrong attempt.
    async with common.transaction() as conn:
        now_row = await common.find_by_id(conn, row.id)
        assert now_row is not None
        outcome: Locked | NotUsable | WrongPin
        if now_row.status == "cancelled":
            outcome = NotUsable()
        elif now_row.locked:
            outcome = Locked()
        else:
            outcome = WrongPin(attempts_left=common.view(now_row).attempts_left)
        await common.audit(conn, actor, action, "changed-meanwhile", masked)
    return outcome


async def verify_pin(card_digits: str, id_number: str, pin: str, actor: Actor) -> VerifyOutcome:
    """The caller proves card, holder and PIN; the answer carries the card's status."""

    async def verified(conn: AsyncConnection, row: Row[Any]) -> Verified:
        await common.audit(conn, actor, "verify", "ok", mask_card(row.card_number))
        fresh = await common.find_by_id(conn, row.id)
        assert fresh is not None
        return Verified(common.view(fresh))

    result: VerifyOutcome = await check_pin(card_digits, id_number, pin, actor, "verify", verified)
    return result
