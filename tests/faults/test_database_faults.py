"""The database fails under calls in progress: what each caller hears, how long they wait
in silence, how soon calls are served again, and that no step is left half-written.

Each test places its calls with the scripted fake Asterisk over real sockets to the real
FastAGI server running the real flows, on the fault tests' own PostgreSQL, and breaks that
PostgreSQL meanwhile: stopped, hung by a lock, its connections terminated, the pool
exhausted, the postmaster killed. A caller the service cannot serve must hear exactly one
apology (the dialplan's, after IVR_NEXT=unavailable) and go to the queue in office hours;
a caller who asked for an agent reaches the queue whatever the database does. Nobody waits
more than 3 s in silence, and the server, not restarted, serves calls again once the
database is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from backend.db.engine import get_engine
from backend.services.change_pin import new_pin_problem
from backend.settings import get_settings
from ivr import contract
from tests.conftest import APP_LOG, IssuedCard, make_pin
from tests.faults.callers import KINDS, FaultFigures, Heard, Kind, place, spread
from tests.faults.conftest import OPEN, Cards, Hotline, Postgres, record, set_clock
from tests.faults.ledger import Changes, compare, snapshot

# What a caller may wait in silence on the backend, however it fails (about 3 s).
SILENCE_LIMIT = 3.0


def new_pin_for(card: IssuedCard) -> str:
    while True:
        pin = make_pin()
        if not new_pin_problem(
            pin, old_pin=card.pin, id_number=card.id_number, card_digits=card.digits
        ):
            return pin


async def calls(
    hotline: Hotline,
    stock: Cards,
    kinds: Sequence[Kind],
    *,
    office_open: bool = True,
    think_seconds: float | Sequence[float] = 0.0,
    hangup_at: int | str | None = None,
) -> list[Heard]:
    """One caller of each kind in `kinds`, all at once, each on a card of their own;
    `think_seconds` at each prompt, for all or for each."""
    cards = stock.take(len(kinds))
    if isinstance(think_seconds, float):
        think_seconds = [think_seconds] * len(kinds)
    return list(
        await asyncio.gather(
            *(
                place(
                    hotline.port,
                    kind,
                    card,
                    office_open=office_open,
                    new_pin=new_pin_for(card),
                    think_seconds=think,
                    hangup_at=hangup_at,
                )
                for kind, card, think in zip(kinds, cards, think_seconds, strict=True)
            )
        )
    )


async def until_served(hotline: Hotline, stock: Cards, limit: float = 15.0) -> float:
    """Seconds until a caller asking for a card's status is served again."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        (call,) = await calls(hotline, stock, ["status"])
        if call.served:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"not served again within {limit} s")


def check_calls(figures: FaultFigures, *, office_open: bool = True) -> None:
    """What every caller of a fault must have lived: served, or one apology and the
    fallback, or the queue when they asked for it; never more than 3 s of silence."""
    for call in figures.calls:
        where = f"{call.kind} call: {call.outcome}, heard {call.heard}"
        assert call.longest_silence < SILENCE_LIMIT, where
        assert call.apologies <= 1, where
        assert "system-error" not in call.heard, where
        if call.transcript.ended == "agi-returned" and not call.served:
            assert call.next == contract.NEXT_UNAVAILABLE, where
            assert call.apologies == 1, where
        if call.kind == "agent" and office_open and call.transcript.ended != "caller-hangup":
            assert call.next == contract.NEXT_AGENT, where
            assert call.transcript.heard[-1:] == ["agent-transfer"], where
            assert call.transcript.variables.get(contract.VAR_AGENT_REASON) == "caller-asked"


def unserved(figures: FaultFigures) -> list[Heard]:
    return [c for c in figures.calls if c.next == contract.NEXT_UNAVAILABLE]


def settle(figures: FaultFigures, changes: Changes) -> None:
    figures.half_written = len(changes.half_written)
    figures.notes["guesses_left_counted"] = changes.guesses_left_counted
    record(figures)
    assert changes.half_written == []


async def test_database_stopped_mid_call(
    postgres: Postgres, hotline: Hotline, card_stock: Cards
) -> None:
    """PostgreSQL stops (fast shutdown) under 24 calls at every step and 24 more arriving
    during the outage, 8 of whom hang up mid-entry: each hears what they were served or
    one apology and the queue; callers who pressed 0 reach the queue; hang-ups end
    cleanly; nobody waits 3 s in silence; once PostgreSQL is back the same server serves
    calls again within seconds; no step is half-written."""
    set_clock(OPEN)
    before = await snapshot()
    figures = FaultFigures("database stopped mid-call")
    # Callers take from 0.02 to 0.5 s at each prompt: the stop finds them at every step.
    thinks = [0.02 + 0.02 * i for i in range(24)]
    inflight = asyncio.create_task(
        calls(hotline, card_stock, spread(KINDS, 24), think_seconds=thinks)
    )
    await asyncio.sleep(1.0)
    await asyncio.to_thread(postgres.stop)
    stopped = time.monotonic()
    figures.calls += await calls(hotline, card_stock, spread(KINDS, 16))
    hangups = await calls(hotline, card_stock, spread(["change", "loss"], 8), hangup_at="enter-pin")
    figures.calls += hangups + await inflight
    await asyncio.sleep(max(0.0, 2 - (time.monotonic() - stopped)))
    await asyncio.to_thread(postgres.start)
    figures.notes["database_down_s"] = round(time.monotonic() - stopped, 1)
    figures.recovery_seconds = await until_served(hotline, card_stock)
    changes = compare(before, await snapshot())
    settle(figures, changes)

    check_calls(figures)
    assert all(c.transcript.ended == "caller-hangup" for c in hangups)
    assert len(unserved(figures)) >= 16  # the outage was met at the database steps
    assert any(c.served and c.kind != "agent" for c in figures.calls)  # and some before it
    assert figures.recovery_seconds < 6


async def test_restarting_database_is_not_hammered(
    postgres: Postgres, hotline: Hotline, card_stock: Cards
) -> None:
    """PostgreSQL is down while 120 callers arrive over 3.5 s: after the first failed
    connection, calls are answered at once (one apology) instead of each trying to
    connect; a few probes, one at a time, try again; the server serves calls again within
    seconds of PostgreSQL's return, without a restart."""
    set_clock(OPEN)
    attempts: list[float] = []
    event.listen(
        get_engine().sync_engine, "do_connect", lambda *_: attempts.append(time.monotonic())
    )
    before = await snapshot()
    figures = FaultFigures("database down, calls arriving (connection attempts)")
    await asyncio.to_thread(postgres.stop)
    figures.calls += await calls(hotline, card_stock, ["status"])  # finds the outage
    started = time.monotonic()
    for _ in range(7):  # 7 waves of 17, half a second apart
        wave = asyncio.gather(
            calls(hotline, card_stock, spread(["status", "change", "loss"], 17)), asyncio.sleep(0.5)
        )
        figures.calls += (await wave)[0]
    window = time.monotonic() - started
    tried = [t for t in attempts if t >= started]
    await asyncio.to_thread(postgres.start)
    figures.recovery_seconds = await until_served(hotline, card_stock)
    figures.notes["connection_attempts"] = (
        f"{len(tried)} in {window:.1f} s for {len(figures.calls) - 1} calls"
    )
    changes = compare(before, await snapshot())
    settle(figures, changes)

    check_calls(figures)
    assert len(unserved(figures)) == len(figures.calls)
    # Retries wait 0.5 s, doubling, at least three quarters of that with jitter.
    assert len(tried) <= 6, tried
    assert max(c.longest_silence for c in figures.calls[1:]) < 0.5
    assert figures.recovery_seconds < 8


async def test_database_frozen(postgres: Postgres, hotline: Hotline, card_stock: Cards) -> None:
    """Every PostgreSQL process is stopped (SIGSTOP) for 6 s, as a host that hangs: no
    statement or lock timeout can fire, yet no caller waits more than the step's bound
    (its pooled connection is dropped at once, without a goodbye to the server), each
    hears one apology, and calls are served again once PostgreSQL runs again."""
    set_clock(OPEN)
    before = await snapshot()
    figures = FaultFigures("PostgreSQL frozen (SIGSTOP, a hung host)")
    await calls(hotline, card_stock, ["status"] * 8)  # connections in the pool, as in service
    with postgres.frozen():
        frozen = time.monotonic()
        figures.calls += await calls(hotline, card_stock, spread(KINDS, 24))
        await asyncio.sleep(max(0.0, 3 - (time.monotonic() - frozen)))
        figures.calls += await calls(hotline, card_stock, spread(KINDS, 24))
        await asyncio.sleep(max(0.0, 6 - (time.monotonic() - frozen)))
    figures.recovery_seconds = await until_served(hotline, card_stock)
    changes = compare(before, await snapshot())
    settle(figures, changes)

    check_calls(figures)
    assert all(c.next == contract.NEXT_UNAVAILABLE for c in figures.calls if c.kind != "agent")
    assert figures.recovery_seconds < 8


@asynccontextmanager
async def locked_cards(postgres: Postgres) -> AsyncIterator[AsyncConnection]:
    """Another client holds LOCK TABLE cards (ACCESS EXCLUSIVE) until the block ends."""
    other = create_async_engine(postgres.url, poolclass=NullPool)
    try:
        async with other.connect() as conn:
            await conn.execute(text("LOCK TABLE cards IN ACCESS EXCLUSIVE MODE"))
            yield conn
            await conn.rollback()
    finally:
        await other.dispose()


async def test_database_hung_by_a_lock(
    postgres: Postgres, hotline: Hotline, card_stock: Cards
) -> None:
    """The cards table is locked by another client for 8 s while 76 callers arrive: the
    ones whose step needs a card hear one apology within the lock wait (no 30 s pool
    wait), callers asking for an agent reach the queue, 6 who hang up while they wait
    end cleanly, and calls are served as soon as the lock goes."""
    set_clock(OPEN)
    before = await snapshot()
    figures = FaultFigures("cards table locked (database hung)")
    async with locked_cards(postgres):
        held = time.monotonic()
        first = await calls(hotline, card_stock, spread(KINDS, 40))
        await asyncio.sleep(max(0.0, 3 - (time.monotonic() - held)))
        # The 6th command is the first after the caller's last entry (the ID number): they
        # are gone by then.
        second, left = await asyncio.gather(
            calls(hotline, card_stock, spread(KINDS, 30)),
            calls(hotline, card_stock, ["status"] * 6, hangup_at=6),
        )
        figures.calls += first + second + left
        await asyncio.sleep(max(0.0, 8 - (time.monotonic() - held)))
    figures.recovery_seconds = await until_served(hotline, card_stock)
    changes = compare(before, await snapshot())
    settle(figures, changes)

    check_calls(figures)
    needing_cards = [c for c in first + second if c.kind != "agent"]
    assert all(c.next == contract.NEXT_UNAVAILABLE for c in needing_cards)
    for call in left:
        assert call.transcript.commands[4].startswith("GET DATA ivr12333/enter-id-number")
        assert call.transcript.ended == "caller-hangup" and call.apologies == 0
    assert figures.recovery_seconds < 1


async def test_connections_terminated_mid_query(
    postgres: Postgres, hotline: Hotline, card_stock: Cards
) -> None:
    """12 callers' statements are waiting in PostgreSQL when their connections are
    terminated (pg_terminate_backend): each hears one apology at once, nothing about the
    statements reaches the log, and the next 12 callers are served on new connections
    (the pool recovers by itself)."""
    set_clock(OPEN)
    before = await snapshot()
    figures = FaultFigures("connections terminated mid-query")
    log_start = APP_LOG.stat().st_size
    async with locked_cards(postgres) as holder:
        inflight = asyncio.create_task(calls(hotline, card_stock, ["status"] * 12))
        waiting: list[int] = []
        deadline = time.monotonic() + 0.7
        while len(waiting) < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            # Within a transaction the activity view is read once, unless told otherwise.
            await holder.execute(text("SELECT pg_stat_clear_snapshot()"))
            found = await holder.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
            waiting = list(found.scalars())
        terminated = await holder.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM unnest(CAST(:p AS int[])) AS pid"
            ),
            {"p": waiting},
        )
        killed = int(terminated.scalar_one())
        figures.notes["terminated_mid_query"] = killed
        figures.calls += await inflight
    started = time.monotonic()
    after_calls = await calls(hotline, card_stock, ["status"] * 12)
    figures.recovery_seconds = time.monotonic() - started
    figures.notes["served_after"] = sum(c.served for c in after_calls)
    changes = compare(before, await snapshot())
    settle(figures, changes)

    check_calls(figures)
    assert killed >= 6
    assert all(c.next == contract.NEXT_UNAVAILABLE for c in figures.calls)
    assert all(c.served for c in after_calls)
    logged = APP_LOG.read_text(encoding="utf-8")[log_start:]
    assert "call.service_unavailable" in logged
    for sql_word in ("SELECT", "UPDATE", "INSERT", "parameters", "FROM cards"):
        assert sql_word not in logged, sql_word


async def test_pool_exhausted(postgres: Postgres, hotline: Hotline, card_stock: Cards) -> None:
    """Every pooled connection is taken for 4 s: callers wait at most the pool's checkout
    bound, then hear one apology (callers asking for an agent still reach the queue); once
    connections are free, calls are served at once."""
    set_clock(OPEN)
    before = await snapshot()
    figures = FaultFigures("connection pool exhausted")
    s = get_settings()
    engine = get_engine()
    taken = [await engine.connect() for _ in range(s.db_pool_size + s.db_pool_overflow)]
    try:
        for conn in taken:
            await conn.execute(text("SELECT 1"))
        figures.calls += await calls(
            hotline, card_stock, spread(["status", "change", "loss", "agent"], 20)
        )
    finally:
        for conn in taken:
            await conn.close()
    figures.recovery_seconds = await until_served(hotline, card_stock)
    changes = compare(before, await snapshot())
    settle(figures, changes)

    check_calls(figures)
    assert all(c.next == contract.NEXT_UNAVAILABLE for c in figures.calls if c.kind != "agent")
    slowest = max(c.longest_silence for c in figures.calls)
    assert s.db_pool_wait_seconds <= slowest < SILENCE_LIMIT
    assert figures.recovery_seconds < 1


async def test_pin_change_survives_postgres_killed(
    postgres: Postgres, hotline: Hotline, card_stock: Cards
) -> None:
    """The postmaster is killed (kill -9) the moment a caller hears "PIN changed", with 10
    other calls in progress: after PostgreSQL restarts (crash recovery), the new PIN is
    the card's and the old one is refused; the calls cut off heard one apology; the same
    server serves calls again."""
    set_clock(OPEN)
    before = await snapshot()
    figures = FaultFigures("PostgreSQL killed (kill -9) and restarted")
    (card,) = card_stock.take()
    new_pin = new_pin_for(card)
    killed: list[asyncio.Future[None]] = []
    loop = asyncio.get_running_loop()

    def on_prompt(prompt: str) -> None:
        if prompt == "pin-changed" and not killed:
            killed.append(loop.run_in_executor(None, postgres.kill))

    others = asyncio.create_task(
        calls(hotline, card_stock, spread(["status", "loss"], 10), think_seconds=0.2)
    )
    changer = await place(
        hotline.port, "change", card, office_open=True, new_pin=new_pin, on_prompt=on_prompt
    )
    assert killed, "the caller never heard that the PIN changed"
    await killed[0]
    down = time.monotonic()
    figures.calls += [changer, *await others]
    await asyncio.to_thread(postgres.start)
    figures.notes["restart_with_crash_recovery_s"] = round(time.monotonic() - down, 1)
    figures.recovery_seconds = await until_served(hotline, card_stock)
    old_pin, card.pin = card.pin, new_pin
    with_new = await place(hotline.port, "status", card, office_open=True)
    card.pin = old_pin
    with_old = await place(hotline.port, "status", card, office_open=True)
    card.pin = new_pin
    figures.notes["new_pin_after_restart"] = with_new.outcome
    figures.notes["old_pin_after_restart"] = (
        "refused" if "wrong-pin" in with_old.heard else with_old.outcome
    )
    changes = compare(before, await snapshot())
    settle(figures, changes)

    assert changer.served and changer.transcript.heard[-2:] == ["pin-changed", "goodbye"]
    check_calls(figures)
    assert with_new.served
    assert "wrong-pin" in with_old.heard and not with_old.served
    assert changes.pins_changed == 1
    assert figures.recovery_seconds < 8
