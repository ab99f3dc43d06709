"""Test-wide set-up: a PostgreSQL cluster of the tests' own, logging every statement, and a
fresh database for the session; the application's log goes to a file the last test scans.

Environment is set at import time, before anything reads the settings.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each test run has its own folder and PostgreSQL cluster, so two runs never disturb each
# other; folders of finished runs are removed by the next one.
TEST_RUNS = ROOT / ".local" / "test"
TEST_DATA = TEST_RUNS / f"run-{os.getpid()}"
APP_LOG = TEST_DATA / "app.log"

os.environ["IVR_ENV"] = "test"
os.environ["IVR_LOG_FILE"] = str(APP_LOG)
# A pepper of this run's own: nothing the tests store is valid under any other.
os.environ["IVR_PIN_PEPPER"] = secrets.token_urlsafe(32)
os.environ.pop("IVR_PIN_PEPPER_FILE", None)
os.environ.pop("IVR_DATABASE_URL", None)
# The suite runs hundreds of concurrent steps on one card on a shared 2-core machine, so
# its database waits are generous; tests/faults runs on the service's own bounds.
SUITE_DB_BOUNDS = {
    "IVR_DB_STEP_SECONDS": "60",
    "IVR_DB_POOL_WAIT_SECONDS": "30",
    "IVR_DB_STATEMENT_TIMEOUT_MS": "30000",
    "IVR_DB_LOCK_TIMEOUT_MS": "30000",
}
os.environ.update(SUITE_DB_BOUNDS)

from backend import idnumber  # noqa: E402
from backend.pgcluster import LocalCluster  # noqa: E402
from backend.settings import reset_settings  # noqa: E402
from ivr.caller import Timeouts  # noqa: E402
from ivr.fake_asterisk import Transcript, run_call  # noqa: E402
from ivr.scripts import SCRIPTS  # noqa: E402
from ivr.server import AgiServer  # noqa: E402

TEST_CLUSTER = LocalCluster(
    TEST_DATA / "pg",
    54334,
    # Every statement with its bound parameters: the log scan proves no PIN or ID gets there.
    (
        "-c log_statement=all",
        "-c log_line_prefix='%m [%p] '",
        "-c max_connections=300",
    ),
)

# Every PIN and full ID number a test hands to the application; the last test greps the
# logs for them.
USED_SECRETS: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_finished_runs() -> None:
    if not TEST_RUNS.is_dir():
        return
    for folder in TEST_RUNS.glob("run-*"):
        pid = folder.name.removeprefix("run-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            LocalCluster(folder / "pg", 54334).stop()
            LocalCluster(folder / "faults" / "pg", 54336).stop()  # tests/faults' own
            shutil.rmtree(folder, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    _remove_finished_runs()
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    if APP_LOG.exists():
        APP_LOG.unlink()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Log scans run after everything else has written its logs.
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database in the tests' own cluster."""
    from backend.logsetup import configure_logging
    from backend.migrate import upgrade

    TEST_CLUSTER.stop()  # a cluster left by an interrupted run may have other options
    if TEST_CLUSTER.logfile.exists():
        TEST_CLUSTER.logfile.unlink()
    TEST_CLUSTER.start()
    name = f"ivr_test_{os.getpid()}"
    TEST_CLUSTER.drop_database(name)
    TEST_CLUSTER.ensure_database(name)
    url = TEST_CLUSTER.url(name)
    os.environ["IVR_DATABASE_URL"] = url
    reset_settings()
    configure_logging("info", APP_LOG, stream=None)
    upgrade(url)
    yield url
    TEST_CLUSTER.stop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    """The session database, with engines disposed after each test's event loop use."""
    from backend.db.engine import dispose_all

    yield database_url
    await dispose_all()


def make_id_number(born: str | None = None) -> str:
    """A random resident ID number with a correct check digit."""
    region = random.choice(["110105", "310104", "440305", "500103"])
    if born is None:
        born = f"{random.randint(1950, 2005)}{random.randint(1, 12):02d}{random.randint(1, 28):02d}"
    body = f"{region}{born}{random.randint(0, 999):03d}"
    number = body + idnumber.check_char(body)
    USED_SECRETS.add(number)
    return number


_issued_numbers: set[str] = set()


def make_card_number(letter: str = "A") -> str:
    while True:
        number = f"{letter}{random.randint(10_000_000, 99_999_999)}"
        if number not in _issued_numbers:
            _issued_numbers.add(number)
            return number


def make_pin() -> str:
    """A PIN that obeys every new-PIN rule (for any holder: birth-date forms are unlikely)."""
    from backend.pinrules import broken_rule

    while True:
        pin = f"{random.randint(0, 999_999):06d}"
        if broken_rule(pin) is None:
            USED_SECRETS.add(pin)
            return pin


@dataclass
class IssuedCard:
    card_number: str
    id_number: str
    name: str
    pin: str  # the PIN it has now (123456 when initial)

    @property
    def digits(self) -> str:
        return "".join(ch for ch in self.card_number if ch.isdigit())


@pytest.fixture
def issue(db: str):  # type: ignore[no-untyped-def]
    """Issue a card in the test database: `await issue()` or `await issue(pin=...)`."""
    from backend.outcomes import Actor, Channel
    from backend.services.cards import issue_card

    async def _issue(
        *,
        pin: str | None = None,
        card_number: str | None = None,
        id_number: str | None = None,
        name: str = "张三",
    ) -> IssuedCard:
        card = IssuedCard(
            card_number or make_card_number(),
            id_number or make_id_number(),
            name,
            pin or "123456",
        )
        if pin:
            USED_SECRETS.add(pin)
        await issue_card(
            card.card_number, card.id_number, name, Actor(Channel.OPERATOR, "test"), pin=pin
        )
        return card

    return _issue


# Calls over the real FastAGI server (in-process, real loopback socket), placed by the
# scripted fake Asterisk, against the test database.
@dataclass
class Phone:
    server: AgiServer
    port: int

    async def call(self, script: str, keys: Sequence[str], **options: Any) -> Transcript:
        transcript = await run_call("127.0.0.1", self.port, script, keys, **options)
        assert not self.server.errors, self.server.errors
        return transcript


@pytest.fixture
async def phone(db: str) -> AsyncIterator[Phone]:
    """The real server with the real flows on a free port; no flow may raise."""
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=3000, entry_ms=3000))
    port = await server.start("127.0.0.1", 0)
    yield Phone(server, port)
    await server.drain()
    assert not server.errors, server.errors
