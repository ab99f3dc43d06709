"""One async engine per process, shared by every call and staff session, and the gate in
front of it.

Every wait on PostgreSQL has a bound from the settings (`db_*` in backend.settings):
connecting (`db_connect_seconds`), waiting for a pooled connection (`db_pool_wait_seconds`),
and on the server each statement (`statement_timeout`) and each lock wait
(`lock_timeout`), set on every connection as it opens. `backend.services.common.transaction`
bounds the whole step on top (`db_step_seconds`), for a server that stops answering at all.

A pooled connection is pinged before use and replaced if PostgreSQL went away meanwhile,
and a connection error invalidates the whole pool, so the pool recovers from a restart by
itself.

The gate (`ConnectGate`) keeps a restarting or stopped database from being hammered: after
a failed connection attempt, steps fail at once for a short wait (doubling while retries
keep failing, with jitter so that processes do not retry in step), then one step at a
time tries again; the first connection that opens lets everyone through.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backend.settings import get_settings

log = structlog.get_logger(__name__)


class ConnectGate:
    """Connection attempts after a failed one, for one database.

    One event loop uses it, so no lock: every method runs without an await in between.
    """

    def __init__(
        self,
        wait: float,
        max_wait: float,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = lambda: random.uniform(0.75, 1.25),
    ) -> None:
        self._wait = wait
        self._max_wait = max_wait
        self._clock = clock
        self._jitter = jitter
        self._failures = 0  # failed attempts in a row; 0 while the database answers
        self._retry_at = 0.0
        self._probing = False

    @property
    def shut(self) -> bool:
        """Whether steps are being refused (or let through one at a time) right now."""
        return self._failures > 0

    def admit(self) -> bool | None:
        """May a step try the database now? False: yes, as usual. True: yes, as the one
        probe (report back with `connected` or `failed`, or `released`). None: no, fail
        at once."""
        if self._failures == 0:
            return False
        if self._probing or self._clock() < self._retry_at:
            return None
        self._probing = True
        return True

    def connected(self, probe: bool) -> None:
        if self._failures:
            log.warning("database_reachable", after_failures=self._failures)
        self._failures = 0
        if probe:
            self._probing = False

    def failed(self, probe: bool) -> None:
        """A connection attempt failed. Attempts that were under way when the gate shut
        do not lengthen the wait: only the first failure and failed probes count."""
        if probe:
            self._probing = False
        elif self._failures:
            return
        self._failures += 1
        wait = min(self._max_wait, self._wait * 2 ** (self._failures - 1)) * self._jitter()
        self._retry_at = self._clock() + wait
        log.warning("database_unreachable", failures=self._failures, retry_in=round(wait, 2))

    def released(self, probe: bool) -> None:
        """The step ended before its connection attempt told anything (e.g. no pooled
        connection was free); a probe leaves the next step to try."""
        if probe:
            self._probing = False


def _drop_at_once(dbapi_connection: Any, _record: Any, _exception: BaseException | None) -> None:
    """A connection given up on (lost, or its step ran out of time) is closed at once.
    Otherwise SQLAlchemy says goodbye to the server first and waits up to 2 s for it, which
    a server that stopped answering never gives: the caller would wait that long too."""
    dbapi_connection.driver_connection.terminate()


@dataclass(frozen=True)
class _Database:
    engine: AsyncEngine
    gate: ConnectGate


_databases: dict[str, _Database] = {}


def _database(url: str | None) -> _Database:
    if url is None:
        from backend.pgcluster import database_url

        url = database_url()
    found = _databases.get(url)
    if found is None:
        s = get_settings()
        # Statements carry bound parameters only; the values never enter SQL text, and
        # hide_parameters keeps them out of exceptions' text too.
        engine = create_async_engine(
            url,
            pool_size=s.db_pool_size,
            max_overflow=s.db_pool_overflow,
            pool_timeout=s.db_pool_wait_seconds,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={
                "timeout": s.db_connect_seconds,
                "server_settings": {
                    "statement_timeout": str(s.db_statement_timeout_ms),
                    "lock_timeout": str(s.db_lock_timeout_ms),
                },
            },
        )
        event.listen(engine.sync_engine.pool, "invalidate", _drop_at_once)
        found = _Database(engine, ConnectGate(s.db_retry_seconds, s.db_retry_max_seconds))
        _databases[url] = found
    return found


def get_engine(url: str | None = None) -> AsyncEngine:
    return _database(url).engine


def get_gate(url: str | None = None) -> ConnectGate:
    return _database(url).gate


def existing_databases() -> list[tuple[AsyncEngine, ConnectGate]]:
    """The engines made so far in this process, without making one (for the metrics)."""
    return [(database.engine, database.gate) for database in _databases.values()]


async def dispose_all() -> None:
    for database in list(_databases.values()):
        await database.engine.dispose()
    _databases.clear()
