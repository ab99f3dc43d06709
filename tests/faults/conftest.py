"""Fault tests: the real FastAGI server on real PostgreSQL while the database is stopped,
hung, cut off, exhausted or killed.

They run on a PostgreSQL cluster of their own (own folder under this run's, own port), so
stopping or killing it never disturbs the database the rest of the suite uses. Unlike the
suite's cluster it runs with fsync on, as in service: what it keeps after a kill is what
production would keep. Every test here is marked `faults` (`make faults`, `pytest -m
faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend.pgcluster import LocalCluster
from backend.settings import reset_settings
from ivr.caller import Timeouts
from ivr.scripts import SCRIPTS
from ivr.server import AgiServer
from tests.conftest import (
    APP_LOG,
    SUITE_DB_BOUNDS,
    TEST_DATA,
    IssuedCard,
    make_card_number,
    make_id_number,
    make_pin,
)
from tests.faults.callers import FaultFigures
from tests.settings_env import settings_environment

FAULTS_DIR = Path(__file__).resolve().parent
FAULTS_CLUSTER = LocalCluster(
    TEST_DATA / "faults" / "pg",
    54336,
    (
        "-c fsync=on",
        "-c synchronous_commit=on",
        "-c log_statement=all",
        "-c log_line_prefix='%m [%p] '",
        "-c max_connections=200",
    ),
)
# What each fault test measured, written for docs/faults.md.
FIGURES_FILE = TEST_DATA / "faults" / "figures.json"

# Friday 27 November 2026, 10:00 and 20:00 in Shanghai: agents on duty, and not.
OPEN = "2026-11-27T10:00:00+08:00"
EVENING = "2026-11-27T20:00:00+08:00"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FAULTS_DIR in item.path.parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def faults_url() -> Iterator[str]:
    """A fresh, migrated database in the fault tests' own cluster."""
    from backend.logsetup import configure_logging
    from backend.migrate import upgrade

    FAULTS_CLUSTER.stop()
    FAULTS_CLUSTER.logfile.unlink(missing_ok=True)
    FAULTS_CLUSTER.start()
    name = f"ivr_faults_{os.getpid()}"
    FAULTS_CLUSTER.drop_database(name)
    FAULTS_CLUSTER.ensure_database(name)
    url = FAULTS_CLUSTER.url(name)
    configure_logging("info", APP_LOG, stream=None)
    upgrade(url)
    FIGURES_FILE.unlink(missing_ok=True)
    yield url
    FAULTS_CLUSTER.stop()


@dataclass
class Postgres:
    """The fault tests' PostgreSQL, and what to do to it."""

    cluster: LocalCluster
    url: str

    def stop(self) -> None:
        """A clean fast shutdown: connections are ended, the socket goes away."""
        self.cluster.stop()

    def start(self) -> None:
        self.cluster.start()

    def postmaster_pid(self) -> int:
        return int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """kill -9 of the postmaster, as a crash; its processes end when they notice.

        Returns once the postmaster is reaped: until then its pid still counts as running
        (pg_ctl and PostgreSQL's lock file check), and a restart would be refused."""
        pid = self.postmaster_pid()
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (alive := [p for p in children if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        for leftover in alive:  # none expected: they exit once the postmaster is gone
            os.kill(leftover, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def signal_all(self, signum: int) -> None:
        """Send `signum` to the postmaster and every process of the cluster."""
        pid = self.postmaster_pid()
        for process in (pid, *_children(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signum)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every PostgreSQL process stopped (SIGSTOP) until the block ends: a server that
        takes connections and statements and never answers, as a hung host does."""
        self.signal_all(signal.SIGSTOP)
        try:
            yield
        finally:
            self.signal_all(signal.SIGCONT)

    def sql(self, statement: str) -> str:
        database = self.url.split("/")[-1].split("?")[0]
        return self.cluster.psql(statement, database)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def service_settings(database_url: str | None = None) -> Iterator[None]:
    """The service's own database bounds (not the suite's generous ones), and the
    database at `database_url`, until the block ends; then the suite's again."""
    values: dict[str, str | None] = dict.fromkeys(SUITE_DB_BOUNDS)
    if database_url is not None:
        values["IVR_DATABASE_URL"] = database_url
    with settings_environment(values, also_restore=("IVR_DATABASE_URL", "IVR_NOW_OVERRIDE")):
        yield


@pytest.fixture
def service_bounds() -> Iterator[None]:
    """The service's own database bounds for one test."""
    with service_settings():
        yield


@pytest.fixture
async def postgres(faults_url: str) -> AsyncIterator[Postgres]:
    """The application on the fault tests' cluster with the service's own bounds, for one
    test (running again at the end, whatever the test did to it); the suite's database
    and settings are put back after."""
    from backend.db.engine import dispose_all

    pg = Postgres(FAULTS_CLUSTER, faults_url)
    with service_settings(faults_url):
        await dispose_all()
        if not FAULTS_CLUSTER.running():
            pg.start()
        try:
            yield pg
        finally:
            await dispose_all()
            if not FAULTS_CLUSTER.running():
                pg.start()


def set_clock(moment: str) -> None:
    """The moment the service believes it is (office hours)."""
    os.environ["IVR_NOW_OVERRIDE"] = moment
    reset_settings()


@dataclass
class Cards:
    """Cards with known PINs in the fault tests' database, handed out one per caller."""

    free: list[IssuedCard] = field(default_factory=list)

    def take(self, count: int = 1) -> list[IssuedCard]:
        assert len(self.free) >= count, "not enough cards issued for the fault tests"
        taken, self.free = self.free[:count], self.free[count:]
        return taken


@pytest.fixture(scope="session")
async def card_stock(faults_url: str) -> Cards:
    """Cards for every fault test, issued once: a caller's card is never shared, so no
    lockout or identity limit mixes into what a fault does."""
    from backend.db.engine import dispose_all
    from backend.outcomes import Actor, Channel
    from backend.services.cards import issue_card

    stock = Cards()
    actor = Actor(Channel.OPERATOR, "faults")

    async def one() -> IssuedCard:
        card = IssuedCard(make_card_number("F"), make_id_number(), "赵六", make_pin())
        await issue_card(card.card_number, card.id_number, card.name, actor, pin=card.pin)
        return card

    with service_settings(faults_url):
        try:
            for _ in range(14):
                stock.free += await asyncio.gather(*(one() for _ in range(30)))
        finally:
            await dispose_all()
    return stock


@dataclass
class Hotline:
    server: AgiServer
    port: int


@pytest.fixture
async def hotline(postgres: Postgres) -> AsyncIterator[Hotline]:
    """The real FastAGI server with the real flows, on a free loopback port."""
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=3000, entry_ms=3000))
    port = await server.start("127.0.0.1", 0)
    yield Hotline(server, port)
    await server.drain()
    # A database fault is no server error: every call ended through the contract.
    assert not server.errors, list(server.errors)


def record(figures: FaultFigures) -> None:
    """Print one fault's figures and add them to this run's figures file."""
    summary = figures.summary()
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    found = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else []
    found = [f for f in found if f.get("fault") != figures.fault] + [summary]
    FIGURES_FILE.write_text(json.dumps(found, ensure_ascii=False, indent=1))
