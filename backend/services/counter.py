"""Counter services after the clerk has checked the holder's ID: unlock, reset the PIN to the
initial one, cancel a loss report, issue a replacement. Each is one conditional UPDATE."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import secrethash
from backend.db.tables import cards, loss_reports
from backend.masking import mask_card
from backend.outcomes import Actor, CounterOutcome, Done, NoMatch, Refused
from backend.pinrules import INITIAL_PIN
from backend.services import common

# Applies the change; returns False when the card is not in a state that allows it.
Change = Callable[[AsyncConnection, Row[Any]], Awaitable[bool]]


async def _with_holder(
    action: str, card_number: str, id_number: str, actor: Actor, change: Change, refusal: str
) -> CounterOutcome:
    async with common.transaction() as conn:
        row = await common.holder_card(conn, card_number, id_number, actor, action)
        if row is None:
            return NoMatch()
        masked = mask_card(row.card_number)
        if not await change(conn, row):
            await common.audit(conn, actor, action, "refused-" + refusal, masked)
            return Refused(refusal)
        await common.audit(conn, actor, action, "done", masked)
        fresh = await common.find_by_id(conn, row.id)
        assert fresh is not None
        return Done(common.view(fresh))


async def unlock(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    async def change(conn: AsyncConnection, row: Row[Any]) -> bool:
        result = await conn.execute(
            update(cards)
            .where(cards.c.id == row.id, cards.c.locked.is_(True))
            .values(locked=False, failed_attempts=0, locked_at=None)
            .returning(cards.c.id)
        )
        return result.first() is not None

    return await _with_holder("unlock", card_number, id_number, actor, change, "not-locked")


async def reset_pin(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    """Back to the initial PIN (the holder forgot theirs); also clears a lock."""
    initial_hash = await secrethash.hash_pin(INITIAL_PIN)

    async def change(conn: AsyncConnection, row: Row[Any]) -> bool:
        result = await conn.execute(
            update(cards)
            .where(cards.c.id == row.id, cards.c.status == "active")
            .values(
                pin_hash=initial_hash,
                pin_is_initial=True,
                failed_attempts=0,
                locked=False,
                locked_at=None,
                pin_changed_at=common.dt_now_sql(),
            )
            .returning(cards.c.id)
        )
        return result.first() is not None

    return await _with_holder("reset-pin", card_number, id_number, actor, change, "cancelled")


async def _close_active_report(
    conn: AsyncConnection, card_id: int, status: str, actor: Actor
) -> bool:
    """Close the card's active report as `status`; False when it has none."""
    await common.lapse_expired_reports(conn, card_id)
    result = await conn.execute(
        update(loss_reports)
        .where(loss_reports.c.card_id == card_id, loss_reports.c.status == "active")
        .values(status=status, closed_by=str(actor), closed_at=common.dt_now_sql())
        .returning(loss_reports.c.id)
    )
    return result.first() is not None


async def cancel_loss_report(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    """Possible only while the report is active, i.e. before a replacement was issued."""

    async def change(conn: AsyncConnection, row: Row[Any]) -> bool:
        return await _close_active_report(conn, row.id, "cancelled", actor)

    return await _with_holder(
        "cancel-loss-report", card_number, id_number, actor, change, "no-active-report"
    )


async def issue_replacement(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    """Closes the active report as replaced and cancels the lost card."""

    async def change(conn: AsyncConnection, row: Row[Any]) -> bool:
        if not await _close_active_report(conn, row.id, "replaced", actor):
            return False
        await conn.execute(update(cards).where(cards.c.id == row.id).values(status="cancelled"))
        return True

    return await _with_holder(
        "issue-replacement", card_number, id_number, actor, change, "no-active-report"
    )
