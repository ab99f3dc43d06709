"""The `flow` mode: the real change-PIN flow end to end, the hotline's real capacity.

`ivr12333 agi serve` runs against a PostgreSQL database of the bench's own (a local cluster
under `.local/bench`, migrated, with cards issued under a random pepper) and hashes PINs
with argon2 at the project's settings. Callers are `ivr.fake_asterisk` (the one emulator
for whole flows: at a few calls a second its cost does not matter): each keys card number,
old PIN, ID number and the new PIN twice on the `change-pin` script, on a card no other
caller holds at that moment, and must hear `pin-changed`. Afterwards every card's stored
hash is checked against the PIN its last call set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emulator import HOST
from bench.processes import ServerProcess, ours_argv
from bench.stats import percentiles

ROOT = Path(__file__).resolve().parent.parent
FLOW_DIR = ROOT / ".local" / "bench"
PG_PORT = 54338
CALL_TIME_LIMIT = 120.0


@dataclass
class FlowCard:
    card_number: str
    id_number: str
    pin: str
    # The two PINs the card alternates between, drawn for this run (`_draw_pins`).
    pins: tuple[str, str]

    def other_pin(self) -> str:
        """The PIN a change sets: the one of the two the card does not have now."""
        return self.pins[1] if self.pin == self.pins[0] else self.pins[0]

    def keys(self, new_pin: str) -> list[str]:
        digits = "".join(ch for ch in self.card_number if ch.isdigit())
        keyed_id = self.id_number.replace("X", "*")
        return [f"{digits}#", f"{self.pin}#", f"{keyed_id}#", f"{new_pin}#", f"{new_pin}#"]


def _id_number(index: int) -> str:
    from backend import idnumber

    body = f"310104{1960 + index % 40}{1 + index % 12:02d}{1 + index % 28:02d}{index % 1000:03d}"
    return body + idnumber.check_char(body)


def _draw_pins(card_number: str, id_number: str) -> tuple[str, str]:
    """Two different PINs for a card, random for each run (no PIN is written in the
    source), each passing the PIN rules for that card."""
    from backend import idnumber
    from backend.pinrules import broken_rule

    born = idnumber.birth_date(id_number)
    pins: list[str] = []
    while len(pins) < 2:
        pin = f"{secrets.randbelow(1_000_000):06d}"
        if pin not in pins and (
            broken_rule(pin, birth_date=born, id_number=id_number, card_number=card_number[1:])
            is None
        ):
            pins.append(pin)
    return pins[0], pins[1]


async def _prepare(cards: int) -> tuple[Any, list[FlowCard]]:
    """A fresh migrated database and `cards` cards; returns the cluster and the cards."""
    from backend.db.engine import dispose_all
    from backend.migrate import upgrade
    from backend.outcomes import Actor, Channel
    from backend.pgcluster import LocalCluster
    from backend.services.cards import issue_card
    from backend.settings import reset_settings

    cluster = LocalCluster(FLOW_DIR / "pg", PG_PORT, ("-c max_connections=300",))
    cluster.start()
    name = f"ivr_bench_{os.getpid()}"
    cluster.drop_database(name)
    cluster.ensure_database(name)
    url = cluster.url(name)
    # The server inherits these: this run's database and a pepper of its own.
    os.environ["IVR_DATABASE_URL"] = url
    os.environ["IVR_PIN_PEPPER"] = secrets.token_urlsafe(32)
    os.environ.pop("IVR_PIN_PEPPER_FILE", None)
    reset_settings()
    from backend.logsetup import configure_logging

    configure_logging("warning")  # the bench's own set-up is not what is measured
    await asyncio.to_thread(upgrade, url)
    made = []
    for index in range(cards):
        card_number, id_number = f"B{30000000 + index}", _id_number(index)
        pins = _draw_pins(card_number, id_number)
        made.append(FlowCard(card_number, id_number, pins[0], pins))
    actor = Actor(Channel.OPERATOR, "bench")
    # In small batches: the PIN hashing queue and each database step have limits.
    for start in range(0, len(made), 8):
        await asyncio.gather(
            *(
                issue_card(c.card_number, c.id_number, "测试", actor, pin=c.pin)
                for c in made[start : start + 8]
            )
        )
    await dispose_all()
    return cluster, made


async def _check_database(cards: list[FlowCard]) -> int:
    """Cards whose stored hash does not match the PIN their last call set."""
    import sqlalchemy as sa

    from backend.db.engine import dispose_all, get_engine
    from backend.db.tables import cards as cards_table
    from backend.secrethash import pin_matches

    async with get_engine().connect() as conn:
        rows = await conn.execute(sa.select(cards_table.c.card_number, cards_table.c.pin_hash))
        stored = {number: pin_hash for number, pin_hash in rows}
    wrong = 0
    for card in cards:
        if not await pin_matches(stored[card.card_number], card.pin):
            wrong += 1
    await dispose_all()
    return wrong


async def run_flow(args: argparse.Namespace, workdir: Path, workers: int) -> dict[str, Any]:
    """`--flow-calls` callers at once for `--flow-seconds`, each changing a PIN."""
    from ivr.fake_asterisk import run_call

    print(f"\n== flow: preparing the database ({args.flow_calls * 2} cards)", flush=True)
    cluster, cards = await _prepare(args.flow_calls * 2)
    argon2_ms = await _argon2_ms()
    free: asyncio.Queue[FlowCard] = asyncio.Queue()
    for card in cards:
        free.put_nowait(card)
    durations: list[float] = []
    errors: dict[str, int] = {}
    completed = 0
    name = f"ivr12333-flow-w{workers}"
    server = ServerProcess(name, ours_argv(8000, workers), 512, workdir)
    end = time.monotonic() + args.flow_seconds

    async def caller(index: int) -> None:
        nonlocal completed
        while time.monotonic() < end:
            card = await free.get()
            new_pin = card.other_pin()
            started = time.perf_counter()
            transcript = await run_call(
                HOST,
                server.port,
                "change-pin",
                card.keys(new_pin),
                caller_number=f"139{index:08d}",
                time_limit=CALL_TIME_LIMIT,
            )
            if "pin-changed" in transcript.heard:
                card.pin = new_pin
                completed += 1
                durations.append(time.perf_counter() - started)
            else:
                heard = transcript.heard[-1] if transcript.heard else transcript.ended
                errors[heard] = errors.get(heard, 0) + 1
            free.put_nowait(card)

    print(f"== {name}: {args.flow_calls} callers for {args.flow_seconds:g} s", flush=True)
    try:
        pg0 = _pg_cpu_seconds(cluster.datadir)
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(args.flow_calls)))
        elapsed = time.perf_counter() - t0
        cpu = server.cpu_seconds() - cpu0
        pg_cpu = _pg_cpu_seconds(cluster.datadir) - pg0
        memory = server.memory_mib()
    finally:
        server.stop()
    log_errors = server.log_errors()
    wrong = await _check_database(cards)
    cluster.stop()
    cores = os.cpu_count() or 1
    calls_per_s = completed / elapsed if elapsed > 0 else 0.0
    result: dict[str, Any] = {
        "workers": workers,
        "callers_at_once": args.flow_calls,
        "calls_completed": completed,
        "errors": errors,
        "database_mismatches": wrong,
        "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(calls_per_s, 2),
        "calls_per_s_per_core": round(calls_per_s / cores, 2),
        "call_wall": percentiles(durations, 0.5, 0.99),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_ms_per_call": round(cpu * 1000 / completed, 1) if completed else None,
        "server_log_errors": log_errors,
        # Where a call's CPU goes: two argon2 runs (the old PIN checked, the new one
        # hashed) inside the server's figure; PostgreSQL's processes apart.
        "argon2_hash_cpu_ms": argon2_ms,
        "postgres_cpu_s": round(pg_cpu, 3),
        "postgres_cpu_ms_per_call": round(pg_cpu * 1000 / completed, 1) if completed else None,
    } | memory
    print(
        f"flow: {completed} PIN changes, {sum(errors.values())} failed, {wrong} wrong in the "
        f"database; {calls_per_s:.2f} calls/s ({calls_per_s / cores:.2f} per core); "
        f"server CPU {result['server_cpu_ms_per_call']} ms a call (argon2 {argon2_ms} ms a "
        f"hash, 2 a call), PostgreSQL {result['postgres_cpu_ms_per_call']} ms a call",
        flush=True,
    )
    return result


def _pg_cpu_seconds(datadir: Path) -> float:
    """CPU of the cluster: the postmaster, its live backends, and (through the
    postmaster's children's times) the backends that have ended."""
    ticks = os.sysconf("SC_CLK_TCK")
    postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


async def _argon2_ms() -> float:
    """CPU milliseconds of one PIN hash at the project's settings (median of 5)."""
    from backend.secrethash import hash_pin

    times = []
    for _ in range(5):
        start = time.process_time()  # the hash runs on a pool thread of this process
        await hash_pin(f"{secrets.randbelow(1_000_000):06d}")
        times.append((time.process_time() - start) * 1000)
    return round(sorted(times)[2], 1)
