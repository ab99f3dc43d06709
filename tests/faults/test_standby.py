"""PostgreSQL as a primary and a streaming standby: the FastAGI server, never restarted and
on one engine, reaches whichever takes writes through one URL naming both
(`target_session_attrs=read-write`).

Two clusters of this module's own (pg_basebackup, streaming, fsync on; the primary waits
for the standby to have each commit, `synchronous_standby_names`). A steady stream of
callers changes PINs, reports losses and asks for a card's status while the primary goes
away and the standby is promoted: stopped cleanly (a switchover), or killed (kill -9).
Callers in that moment hear one apology at once; calls placed after the promotion are
served; every change a caller heard as done is on the new primary.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from backend.db.engine import dispose_all, get_engine
from backend.pgcluster import LocalCluster, writable_url
from backend.settings import get_settings
from ivr.caller import Timeouts
from ivr.scripts import SCRIPTS
from ivr.server import AgiServer
from tests.conftest import (
    APP_LOG,
    TEST_DATA,
    IssuedCard,
    make_card_number,
    make_id_number,
    make_pin,
)
from tests.faults.callers import FaultFigures, Heard, Kind, place
from tests.faults.conftest import (
    FIGURES_FILE,
    OPEN,
    Postgres,
    record,
    service_settings,
    set_clock,
)
from tests.faults.ledger import Snapshot, compare, reported_cards, snapshot
from tests.faults.test_database_faults import SILENCE_LIMIT, check_calls, new_pin_for

PAIR_DIR = TEST_DATA / "standby"
OPTIONS = ("-c fsync=on", "-c synchronous_commit=on", "-c max_connections=100")
# A caller every this many seconds, for this long before the primary goes and after.
CALL_GAP_S = 0.15
BEFORE_S = 1.5
AFTER_S = 3.0
KINDS_IN_TURN: tuple[Kind, ...] = ("change", "loss", "status")


@dataclass
class Pair:
    primary: LocalCluster
    standby: LocalCluster
    url: str
    cards: list[IssuedCard]

    def take(self) -> IssuedCard:
        assert self.cards, "not enough cards issued for the standby tests"
        return self.cards.pop()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A migrated primary with cards, its synchronous standby streaming, and the
    service's own bounds on a URL naming both (the primary first)."""
    from backend.logsetup import configure_logging
    from backend.migrate import upgrade
    from backend.outcomes import Actor, Channel
    from backend.services.cards import issue_card

    for old in (PAIR_DIR / "a" / "pg", PAIR_DIR / "b" / "pg"):
        LocalCluster(old, 0).stop()
    shutil.rmtree(PAIR_DIR, ignore_errors=True)
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    configure_logging("info", APP_LOG, stream=None)
    name = f"ivr_standby_{os.getpid()}"
    primary = LocalCluster(PAIR_DIR / "a" / "pg", 54337, OPTIONS, PAIR_DIR, replication=True)
    primary.start()
    primary.ensure_database(name)
    await asyncio.to_thread(upgrade, primary.url(name))
    standby = primary.make_standby(PAIR_DIR / "b" / "pg", 54338, OPTIONS)
    standby.start()
    # Only now: with no standby connected, every commit would wait for one.
    primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'", "postgres")
    primary.psql("SELECT pg_reload_conf()", "postgres")
    url = writable_url([primary, standby], name)
    cards: list[IssuedCard] = []
    actor = Actor(Channel.OPERATOR, "standby")

    async def one() -> IssuedCard:
        card = IssuedCard(make_card_number("S"), make_id_number(), "钱七", make_pin())
        await issue_card(card.card_number, card.id_number, card.name, actor, pin=card.pin)
        return card

    try:
        with service_settings(url):
            await dispose_all()
            for _ in range(3):
                cards += await asyncio.gather(*(one() for _ in range(20)))
            yield Pair(primary, standby, url, cards)
            await dispose_all()
    finally:
        primary.stop()
        standby.stop()


@dataclass(frozen=True)
class Placed:
    at: float
    card: IssuedCard
    heard: Heard


async def stream(
    port: int, take: Callable[[], IssuedCard], until: asyncio.Event, placed: list[Placed]
) -> None:
    """Callers one after another, CALL_GAP_S apart, each on a card of its own, until told."""
    running: list[asyncio.Task[None]] = []
    n = 0

    async def one(kind: Kind) -> None:
        card = take()
        at = time.monotonic()
        new_pin = new_pin_for(card) if kind == "change" else ""
        heard = await place(port, kind, card, office_open=True, new_pin=new_pin)
        placed.append(Placed(at, card, heard))

    while not until.is_set():
        running.append(asyncio.create_task(one(KINDS_IN_TURN[n % len(KINDS_IN_TURN)])))
        n += 1
        await asyncio.sleep(CALL_GAP_S)
    await asyncio.gather(*running)


async def judge(
    placed: list[Placed], before: Snapshot, gone_at: float, promoted_at: float, fault: str
) -> FaultFigures:
    """What the callers around a change of primary lived, recorded and checked: nothing
    half-written, one apology at most and no long silence, and every change a caller heard
    as done on the new primary."""
    placed.sort(key=lambda p: p.at)
    figures = FaultFigures(fault, calls=[p.heard for p in placed])
    served_after = [p.at for p in placed if p.at >= gone_at and p.heard.served]
    assert served_after, "no call was served after the primary went"
    figures.recovery_seconds = min(served_after) - gone_at
    after = await snapshot()
    changes = compare(before, after)
    figures.half_written = len(changes.half_written)
    changed = [p.card for p in placed if p.heard.kind == "change" and p.heard.served]
    reported = [p.card for p in placed if p.heard.kind == "loss" and p.heard.served]
    on_record = await reported_cards()
    kept_changes = sum(after.pins[c.card_number] != before.pins[c.card_number] for c in changed)
    kept_reports = sum(c.card_number in on_record for c in reported)
    figures.notes.update(
        placed=len(placed),
        served=sum(p.heard.served for p in placed),
        promotion_s=round(promoted_at - gone_at, 2),
        pin_changes_heard=len(changed),
        pin_changes_heard_and_in_database=kept_changes,
        pin_changes_in_database=changes.pins_changed,
        loss_reports_heard=len(reported),
        loss_reports_heard_and_in_database=kept_reports,
        loss_reports_in_database=changes.reports_filed,
    )
    record(figures)

    assert changes.half_written == []
    check_calls(figures)
    assert figures.longest_silence < SILENCE_LIMIT
    # Every change heard as done is done; one failing in its commit may be done unheard.
    assert kept_changes == len(changed) and kept_reports == len(reported)
    assert changes.pins_changed >= len(changed) and changes.reports_filed >= len(reported)
    return figures


def stop_cleanly(pair: Pair) -> None:
    pair.primary.stop()


def kill(pair: Pair) -> None:
    Postgres(pair.primary, pair.url).kill()


@pytest.mark.parametrize(
    ("how", "fault"),
    [
        (stop_cleanly, "primary stopped cleanly, standby promoted (switchover)"),
        (kill, "primary killed (kill -9), synchronous standby promoted (failover)"),
    ],
    ids=["switchover", "failover"],
)
async def test_primary_changes_under_calls(
    pair: Pair, how: Callable[[Pair], None], fault: str
) -> None:
    """Calls run while the primary goes away and the standby is promoted: the same server
    and engine (no restart, no new engine) serve calls again at once from the new primary;
    callers in between hear one apology within the usual bound; every PIN change and loss
    report a caller heard as done is on the new primary, and no change is half-written."""
    set_clock(OPEN)
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=3000, entry_ms=3000))
    port = await server.start("127.0.0.1", 0)
    engine = get_engine()
    before = await snapshot()
    assert pair.standby.in_recovery()
    placed: list[Placed] = []
    stop = asyncio.Event()
    callers = asyncio.create_task(stream(port, pair.take, stop, placed))
    await asyncio.sleep(BEFORE_S)
    gone_at = time.monotonic()
    await asyncio.to_thread(how, pair)
    await asyncio.to_thread(pair.standby.promote)
    promoted_at = time.monotonic()
    await asyncio.sleep(AFTER_S)
    stop.set()
    await callers
    await server.drain()
    assert not server.errors, list(server.errors)
    assert get_engine() is engine

    figures = await judge(placed, before, gone_at, promoted_at, fault)
    # Served again once the new primary takes writes and the connect gate's next retry
    # comes (it backs off up to db_retry_max_seconds after failed connects).
    assert figures.recovery_seconds is not None
    retry = get_settings().db_retry_max_seconds
    assert figures.recovery_seconds < (promoted_at - gone_at) + retry + 1.0
    # Calls were cut by the switch, and served on both sides of it.
    assert any(p.heard.served for p in placed if p.at < gone_at)
