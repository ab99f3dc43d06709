"""Limits on guesses, decided by the database before the guess is checked.

An attempt is reserved first, in one conditional upsert: it counts as a failure from that
moment, and only a success gives it back. Any number of concurrent guesses therefore sees
at most `attempts` reservations granted per window, whatever the checks then find, and a
check that crashes half-way stays counted.

Counters are keyed by a keyed hash of what they limit (card digits, caller number,
username, client address), so the table holds nothing a person typed. A window starts with
its first failure and ends `window` later: a stranger can pause a thing for at most that
long, never for good.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, delete, literal, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.db.tables import attempt_counters
from backend.services import common
from backend.settings import get_settings

# The longest window any limit may have: rows whose window ended before this are dead.
MAX_WINDOW = dt.timedelta(days=1)


@dataclass(frozen=True)
class Limit:
    scope: str
    attempts: int
    window: dt.timedelta

    def __post_init__(self) -> None:
        if not dt.timedelta(0) < self.window <= MAX_WINDOW or self.attempts < 1:
            raise ValueError(f"limit {self.scope}: 1+ attempts in a window of at most a day")


@dataclass(frozen=True)
class Reservation:
    limit: Limit
    key: str
    failures: int  # counting this attempt

    @property
    def reached_limit(self) -> bool:
        """This attempt is the one that used the window's last try (alarm once, here)."""
        return self.failures == self.limit.attempts


def counter_key(limit: Limit, value: str) -> str:
    pepper = get_settings().pepper_bytes
    return hmac.new(pepper, f"attempt:{limit.scope}:{value}".encode(), hashlib.sha256).hexdigest()


def _window_over(limit: Limit) -> ColumnElement[bool]:
    started: ColumnElement[bool] = (
        attempt_counters.c.window_started <= common.dt_now_sql() - literal(limit.window)
    )
    return started


async def reserve(conn: AsyncConnection, limit: Limit, value: str) -> Reservation | None:
    """Count one attempt against `value`; None (nothing counted) when its window is full."""
    key = counter_key(limit, value)
    expired = _window_over(limit)
    statement = (
        insert(attempt_counters)
        .values(scope=limit.scope, key=key, failures=1, window_started=common.dt_now_sql())
        .on_conflict_do_update(
            index_elements=["scope", "key"],
            set_={
                "failures": case((expired, 1), else_=attempt_counters.c.failures + 1),
                "window_started": case(
                    (expired, common.dt_now_sql()), else_=attempt_counters.c.window_started
                ),
            },
            where=expired | (attempt_counters.c.failures < limit.attempts),
        )
        .returning(attempt_counters.c.failures)
    )
    failures = (await conn.execute(statement)).scalar_one_or_none()
    return None if failures is None else Reservation(limit, key, failures)


async def give_back(conn: AsyncConnection, reservation: Reservation) -> None:
    """The reserved attempt succeeded: it no longer counts.

    Successes are also where dead rows go: a counter whose window ended more than
    `MAX_WINDOW` ago limits nothing, so keys an attacker made up do not pile up for ever."""
    await conn.execute(
        delete(attempt_counters).where(
            attempt_counters.c.window_started < common.dt_now_sql() - literal(2 * MAX_WINDOW)
        )
    )
    await conn.execute(
        update(attempt_counters)
        .where(
            attempt_counters.c.scope == reservation.limit.scope,
            attempt_counters.c.key == reservation.key,
            attempt_counters.c.failures > 0,
        )
        .values(failures=attempt_counters.c.failures - 1)
    )


async def failures(conn: AsyncConnection, limit: Limit, value: str) -> int:
    """Failures counted against `value` in its current window."""
    row = (
        await conn.execute(
            attempt_counters.select().where(
                attempt_counters.c.scope == limit.scope,
                attempt_counters.c.key == counter_key(limit, value),
                ~_window_over(limit),
            )
        )
    ).first()
    return 0 if row is None else int(row.failures)
