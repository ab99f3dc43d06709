"""Counter services after the clerk has checked the holder's ID: unlock, reset the PIN to the
initial one, cancel a loss report, issue a replacement.

Each is one transaction: the holder found (the clerk's identity budget reserved first,
backend.services.identity), then one conditional UPDATE that decides whether the card's
state allows the service, then the audit row."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import secrethash
from backend.db.tables import cards, loss_reports
from backend.outcomes import Actor, CardView, CounterOutcome, Done, Refused
from backend.pinrules import INITIAL_PIN
from backend.services import common, identity


async def _finish(
    conn: AsyncConnection, actor: Actor, action: str, card: CardView, done: bool, refusal: str
) -> CounterOutcome:
    if not done:
        await common.audit(conn, actor, action, "refused-" + refusal, card.card_masked)
        return Refused(refusal)
    await common.audit(conn, actor, action, "done", card.card_masked)
    fresh = await common.find_by_id(conn, card.card_id)
    assert fresh is not None
    return Done(common.view(fresh))


async def unlock(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    action = "unlock"
    async with common.transaction() as conn:
        card = await identity.find_holder(conn, card_number, id_number, actor, action)
        if not isinstance(card, CardView):
            return card
        unlocked = await conn.execute(
            update(cards)
            .where(cards.c.id == card.card_id, cards.c.locked.is_(True))
            .values(locked=False, failed_attempts=0, locked_at=None)
            .returning(cards.c.id)
        )
        return await _finish(conn, actor, action, card, unlocked.first() is not None, "not-locked")


async def reset_pin(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    """Back to the initial PIN (the holder forgot theirs); also clears a lock."""
    action = "reset-pin"
    initial_hash = await secrethash.hash_pin(INITIAL_PIN)
    async with common.transaction() as conn:
        card = await identity.find_holder(conn, card_number, id_number, actor, action)
        if not isinstance(card, CardView):
            return card
        reset = await conn.execute(
            update(cards)
            .where(cards.c.id == card.card_id, cards.c.status == "active")
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
        return await _finish(conn, actor, action, card, reset.first() is not None, "cancelled")


async def _close_active_report(
    conn: AsyncConnection, card_id: int, status: str, actor: Actor
) -> bool:
    """Close the card's active report as `status`; False when it has none.

    The card row is locked first, as every use case touching a card and its reports does
    (card, then reports), so two of them never wait on each other in a circle."""
    await conn.execute(select(cards.c.id).where(cards.c.id == card_id).with_for_update())
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
    action = "cancel-loss-report"
    async with common.transaction() as conn:
        card = await identity.find_holder(conn, card_number, id_number, actor, action)
        if not isinstance(card, CardView):
            return card
        closed = await _close_active_report(conn, card.card_id, "cancelled", actor)
        return await _finish(conn, actor, action, card, closed, "no-active-report")


async def issue_replacement(card_number: str, id_number: str, actor: Actor) -> CounterOutcome:
    """Closes the active report as replaced and cancels the lost card."""
    action = "issue-replacement"
    async with common.transaction() as conn:
        card = await identity.find_holder(conn, card_number, id_number, actor, action)
        if not isinstance(card, CardView):
            return card
        closed = await _close_active_report(conn, card.card_id, "replaced", actor)
        if closed:
            await conn.execute(
                update(cards).where(cards.c.id == card.card_id).values(status="cancelled")
            )
        return await _finish(conn, actor, action, card, closed, "no-active-report")
