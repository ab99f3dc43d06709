"""Loss reports: self-service by phone, by an agent, and written at a counter.

At most one active report per card, enforced by a partial unique index: a second report,
however concurrent, finds the first one's reference instead of making another.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.db.tables import cards, loss_reference_seq_name, loss_reports
from backend.officehours import add_working_days, current_time
from backend.outcomes import (
    Actor,
    CardView,
    Channel,
    InitialPinRefused,
    LossReported,
    NoMatch,
    NotUsable,
    Proven,
    ReportLossOutcome,
    Stale,
    TooManyTries,
)
from backend.services import common, identity
from backend.services.verify import claim_proven, proof_is_fresh, proof_refusal
from backend.settings import get_settings


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def make_reference(day: dt.date, serial: int) -> str:
    """Twelve digits a person can read out: date, serial of the day, a check digit."""
    body = f"{day:%y%m%d}{serial % 100000:05d}"
    return body + _luhn_digit(body)


def _expiry(now: dt.datetime) -> dt.datetime:
    """Midnight (local) after the last working day a temporary report is valid."""
    s = get_settings()
    tz = ZoneInfo(s.timezone)
    last_day = add_working_days(now.astimezone(tz).date(), s.loss_report_valid_working_days)
    return dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), tzinfo=tz)


async def _active_report(conn: AsyncConnection, card_id: int) -> Row[Any]:
    row = (
        await conn.execute(
            select(loss_reports).where(
                loss_reports.c.card_id == card_id, loss_reports.c.status == "active"
            )
        )
    ).first()
    assert row is not None, "the conflicting report must be visible"
    return row


def _reported(row: Row[Any], *, already: bool) -> LossReported:
    return LossReported(
        reference=row.reference,
        channel=row.channel,
        kind=row.kind,
        expires_at=row.expires_at,
        already_reported=already,
    )


async def file_report(
    conn: AsyncConnection, card_id: int, channel: Channel, actor: Actor, *, written: bool = False
) -> LossReported:
    """Insert the card's one active report, or return the one that exists."""
    await common.lapse_expired_reports(conn, card_id)
    serial = (await conn.execute(select(func.nextval(loss_reference_seq_name)))).scalar_one()
    now = current_time()
    reference = make_reference(now.astimezone(ZoneInfo(get_settings().timezone)).date(), serial)
    inserted = (
        await conn.execute(
            insert(loss_reports)
            .values(
                card_id=card_id,
                reference=reference,
                channel=str(channel),
                kind="written" if written else "temporary",
                reported_by=str(actor),
                expires_at=None if written else _expiry(now),
                written_by=str(actor) if written else None,
                written_at=common.dt_now_sql() if written else None,
            )
            .on_conflict_do_nothing(
                index_elements=["card_id"], index_where=text("status = 'active'")
            )
            .returning(loss_reports)
        )
    ).first()
    if inserted is not None:
        return _reported(inserted, already=False)
    return _reported(await _active_report(conn, card_id), already=True)


async def report_loss_self_service(proof: Proven, actor: Actor) -> ReportLossOutcome:
    """The 24-hour phone report, for a card proven by `prove_holder`: only for cards whose
    PIN is no longer the initial one. One transaction: the card claimed as proven (same PIN
    hash, active, unlocked; the count reset), the report filed, the audit row."""
    masked = proof.card.card_masked
    if not proof_is_fresh(proof, actor):
        await common.audit_alone(actor, "report-loss", "proof-stale", masked)
        return Stale()
    async with common.transaction() as conn:
        claimed = (
            await conn.execute(claim_proven(proof).returning(cards.c.pin_is_initial))
        ).first()
        if claimed is None:
            refusal, said = await proof_refusal(conn, proof)
            await common.audit(conn, actor, "report-loss", said, masked)
            return refusal
        if claimed.pin_is_initial:
            await common.audit(conn, actor, "report-loss", "initial-pin-refused", masked)
            return InitialPinRefused()
        outcome = await file_report(conn, proof.card_id, Channel.IVR, actor)
        await common.audit(
            conn,
            actor,
            "report-loss",
            "existing" if outcome.already_reported else "reported",
            masked,
            {"reference": outcome.reference},
        )
        return outcome


async def report_loss_by_staff(
    card_number: str, id_number: str, actor: Actor, *, written: bool = False
) -> LossReported | NoMatch | NotUsable | TooManyTries:
    """An agent (temporary) or counter clerk (written) files the report after checking the ID.

    A written report turns the card's temporary report into a written one, keeping its
    reference."""
    action = "written-loss-report" if written else "report-loss"
    async with common.transaction() as conn:
        card = await identity.find_holder(conn, card_number, id_number, actor, action)
        if not isinstance(card, CardView):
            return card
        masked = card.card_masked
        # Decided by the database, and the row held until the report is in: a replacement
        # issued at the same moment cannot cancel the card in between.
        usable = (
            await conn.execute(
                select(cards.c.id)
                .where(cards.c.id == card.card_id, cards.c.status == "active")
                .with_for_update()
            )
        ).first()
        if usable is None:
            await common.audit(conn, actor, action, "not-usable", masked)
            return NotUsable()
        if written:
            await common.lapse_expired_reports(conn, card.card_id)
            upgraded = (
                await conn.execute(
                    update(loss_reports)
                    .where(
                        loss_reports.c.card_id == card.card_id,
                        loss_reports.c.status == "active",
                        loss_reports.c.kind == "temporary",
                    )
                    .values(
                        kind="written",
                        expires_at=None,
                        written_by=str(actor),
                        written_at=common.dt_now_sql(),
                    )
                    .returning(loss_reports)
                )
            ).first()
            if upgraded is not None:
                await common.audit(
                    conn, actor, action, "made-written", masked, {"reference": upgraded.reference}
                )
                return _reported(upgraded, already=False)
        outcome = await file_report(conn, card.card_id, actor.channel, actor, written=written)
        await common.audit(
            conn,
            actor,
            action,
            "existing" if outcome.already_reported else "reported",
            masked,
            {"reference": outcome.reference},
        )
        return outcome
