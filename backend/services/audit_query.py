"""Reading the audit trail for supervisors: filters and pages, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select

from backend.db.tables import audit_events
from backend.masking import mask_card
from backend.services import common

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilter:
    card: str | None = None  # a card number, full or already masked
    actor: str | None = None  # a staff username, or an actor id such as a call id
    channel: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class AuditEvent:
    event_id: int
    at: dt.datetime
    channel: str
    actor: str
    card_masked: str | None
    action: str
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    page: int
    page_size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def card_key(text: str) -> str:
    """The masked form the trail stores: a full card number is masked, a masked one kept."""
    value = text.strip().upper()
    if "*" in value:
        return value
    return mask_card(value)


def actor_keys(text: str) -> list[str]:
    """A bare username matches the staff member; anything else the actor id as written."""
    value = text.strip()
    if ":" in value:
        return [value]
    return [f"staff:{value.lower()}", value]


def _where(query: Select[Any], wanted: AuditFilter) -> Select[Any]:
    if wanted.card:
        query = query.where(audit_events.c.card_masked == card_key(wanted.card))
    if wanted.actor:
        query = query.where(audit_events.c.actor.in_(actor_keys(wanted.actor)))
    if wanted.channel:
        query = query.where(audit_events.c.channel == wanted.channel)
    if wanted.action:
        query = query.where(audit_events.c.action == wanted.action)
    if wanted.outcome:
        query = query.where(audit_events.c.outcome == wanted.outcome)
    if wanted.since:
        query = query.where(audit_events.c.at >= wanted.since)
    if wanted.until:
        query = query.where(audit_events.c.at < wanted.until)
    return query


async def search_audit(wanted: AuditFilter, page: int = 1, page_size: int = PAGE_SIZE) -> AuditPage:
    page = max(1, page)
    page_size = max(1, min(page_size, 500))
    async with common.transaction() as conn:
        total = (
            await conn.execute(_where(select(func.count()).select_from(audit_events), wanted))
        ).scalar_one()
        rows = (
            await conn.execute(
                _where(select(audit_events), wanted)
                .order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
                .offset((page - 1) * page_size)
                .limit(page_size)
            )
        ).all()
    events = [
        AuditEvent(
            event_id=row.id,
            at=row.at,
            channel=row.channel,
            actor=row.actor,
            card_masked=row.card_masked,
            action=row.action,
            outcome=row.outcome,
            detail=dict(row.detail or {}),
        )
        for row in rows
    ]
    return AuditPage(events=events, page=page, page_size=page_size, total=int(total))


async def distinct_values(column: str) -> list[str]:
    """Values seen in `channel`, `action` or `outcome`, for the filter form's choices."""
    col = {"channel": audit_events.c.channel, "action": audit_events.c.action}.get(
        column, audit_events.c.outcome
    )
    async with common.transaction() as conn:
        rows = (await conn.execute(select(col).distinct().order_by(col))).all()
    return [row[0] for row in rows]
