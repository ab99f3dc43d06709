"""Attempt counters: the database grants at most `attempts` reservations a window, however
many ask at once; a success gives one back; dead rows do not pile up."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import pytest
from sqlalchemy import func, select

from backend.db.tables import attempt_counters
from backend.officehours import current_time
from backend.services import attempts, common
from backend.services.attempts import Limit
from backend.settings import reset_settings

LIMIT = Limit("test-scope", 5, dt.timedelta(minutes=10))


async def _reserve(value: str) -> attempts.Reservation | None:
    async with common.transaction() as conn:
        return await attempts.reserve(conn, LIMIT, value)


async def test_concurrent_reservations_never_pass_the_limit(db: str) -> None:
    """100 reservations at once on one key: exactly 5 granted, numbered 1-5, one at the limit."""
    value = secrets.token_hex(8)
    granted = [r for r in await asyncio.gather(*[_reserve(value) for _ in range(100)]) if r]
    assert sorted(r.failures for r in granted) == [1, 2, 3, 4, 5]
    assert sum(r.reached_limit for r in granted) == 1
    async with common.transaction() as conn:
        assert await attempts.failures(conn, LIMIT, value) == 5


async def test_a_success_gives_its_attempt_back(db: str) -> None:
    """A given-back reservation makes room for exactly one more."""
    value = secrets.token_hex(8)
    held = [await _reserve(value) for _ in range(5)]
    assert await _reserve(value) is None
    async with common.transaction() as conn:
        assert held[0] is not None
        await attempts.give_back(conn, held[0])
    assert await _reserve(value) is not None
    assert await _reserve(value) is None


async def test_the_window_ends_and_the_table_holds_no_typed_value(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the window the count starts again at 1; rows store a keyed hash, not the value;
    a success deletes rows whose window ended long ago."""
    value = secrets.token_hex(8)
    for _ in range(5):
        assert await _reserve(value) is not None
    assert await _reserve(value) is None
    async with common.transaction() as conn:
        keys = (await conn.execute(select(attempt_counters.c.key))).scalars().all()
    assert value not in keys and all(len(k) == 64 for k in keys)
    later = current_time() + LIMIT.window + dt.timedelta(seconds=1)
    monkeypatch.setenv("IVR_NOW_OVERRIDE", later.isoformat())
    reset_settings()
    try:
        again = await _reserve(value)
        assert again is not None and again.failures == 1
        stale = secrets.token_hex(8)
        await _reserve(stale)
        much_later = later + 2 * attempts.MAX_WINDOW + dt.timedelta(minutes=1)
        monkeypatch.setenv("IVR_NOW_OVERRIDE", much_later.isoformat())
        reset_settings()
        fresh = await _reserve(secrets.token_hex(8))
        assert fresh is not None
        async with common.transaction() as conn:
            await attempts.give_back(conn, fresh)
            left = (
                await conn.execute(
                    select(func.count())
                    .select_from(attempt_counters)
                    .where(attempt_counters.c.key == attempts.counter_key(LIMIT, stale))
                )
            ).scalar_one()
        assert left == 0
    finally:
        monkeypatch.undo()
        reset_settings()


def test_a_limit_needs_a_window_of_at_most_a_day() -> None:
    """Longer windows would outlive the purge of dead rows."""
    with pytest.raises(ValueError, match="at most a day"):
        Limit("x", 3, dt.timedelta(days=2))
    with pytest.raises(ValueError, match="at most a day"):
        Limit("x", 0, dt.timedelta(minutes=1))
