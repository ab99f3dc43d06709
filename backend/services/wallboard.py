"""The supervisor's wallboard figures for a span of days, in one read-only transaction.

Calls come from `call_outcomes` (one row per call a FastAGI server ran), hand-offs are the
calls that ended with the agent queue, lockouts are the audit rows of a wrong PIN that
locked a card, loss reports are the reports filed. Days are the service's own (its time
zone); a single day is counted by hour, longer spans by day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.db.tables import audit_events, call_outcomes, loss_reports
from backend.errors import InvalidInput
from backend.services.common import transaction
from backend.settings import get_settings

# The longest span one wallboard shows.
MAX_DAYS = 92
OUTCOMES = ("served", "agent", "hung_up", "ended", "failed", "shutdown")


@dataclass(frozen=True)
class Span:
    """Whole days from `first` to `last`, both included, in the service's time zone."""

    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def by_hour(self) -> bool:
        return self.days == 1

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        zone = ZoneInfo(get_settings().timezone)
        start = dt.datetime.combine(self.first, dt.time(), zone)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), zone)
        return start, end

    def buckets(self) -> list[str]:
        """Labels of the time buckets, in order: "00".."23", or ISO dates."""
        if self.by_hour:
            return [f"{hour:02d}" for hour in range(24)]
        return [(self.first + dt.timedelta(days=n)).isoformat() for n in range(self.days)]


def span(first: dt.date, last: dt.date | None = None) -> Span:
    """A span to show; raises InvalidInput when it is backwards or too long."""
    last = last or first
    if last < first:
        raise InvalidInput("span", "the last day is before the first")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput("span", f"at most {MAX_DAYS} days at once")
    return Span(first, last)


@dataclass
class Wallboard:
    span: Span
    # calls[bucket][outcome] = count
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    handoffs: dict[str, int] = field(default_factory=dict)
    lockouts: dict[str, int] = field(default_factory=dict)
    loss_reports: dict[str, int] = field(default_factory=dict)

    @property
    def total_calls(self) -> int:
        return sum(sum(row.values()) for row in self.calls.values())

    def outcome_total(self, outcome: str) -> int:
        return sum(row.get(outcome, 0) for row in self.calls.values())

    @property
    def served_share(self) -> float | None:
        """Share of calls served without an agent, or None without calls."""
        total = self.total_calls
        return self.outcome_total("served") / total if total else None


async def _grouped(conn: AsyncConnection, query: object) -> dict[str, int]:
    rows = await conn.execute(query)  # type: ignore[call-overload]
    return {str(key): int(count) for key, count in rows}


async def wallboard(shown: Span) -> Wallboard:
    start, end = shown.bounds()
    zone = get_settings().timezone
    unit = "hour" if shown.by_hour else "day"
    local = func.timezone(zone, call_outcomes.c.ended_at)
    bucket = func.date_trunc(unit, local)
    in_span = call_outcomes.c.ended_at >= start, call_outcomes.c.ended_at < end
    board = Wallboard(shown, {label: {} for label in shown.buckets()})
    async with transaction() as conn:
        rows = await conn.execute(
            select(bucket, call_outcomes.c.outcome, func.count())
            .where(*in_span)
            .group_by(bucket, call_outcomes.c.outcome)
        )
        for at, outcome, count in rows:
            label = f"{at.hour:02d}" if shown.by_hour else at.date().isoformat()
            board.calls.setdefault(label, {})[outcome] = int(count)
        reason = func.coalesce(call_outcomes.c.agent_reason, "other")
        board.handoffs = await _grouped(
            conn,
            select(reason, func.count())
            .where(*in_span, call_outcomes.c.outcome == "agent")
            .group_by(reason),
        )
        board.lockouts = await _grouped(
            conn,
            select(audit_events.c.channel, func.count())
            .where(
                audit_events.c.at >= start,
                audit_events.c.at < end,
                audit_events.c.outcome == "wrong-pin-locked",
            )
            .group_by(audit_events.c.channel),
        )
        board.loss_reports = await _grouped(
            conn,
            select(loss_reports.c.channel, func.count())
            .where(loss_reports.c.reported_at >= start, loss_reports.c.reported_at < end)
            .group_by(loss_reports.c.channel),
        )
    return board
