"""Metrics, health and readiness of `ivr12333 agi serve`, read over HTTP after real calls
through the fake Asterisk."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from backend.db.engine import get_engine
from ivr.fake_asterisk import FakeCall, run_call
from tests import known_calls
from tests.agi_process import HOST, AgiProcess
from tests.agi_process import agi_server as agi_server_process


@pytest.fixture
async def agi_server(db: str, tmp_path: Path) -> AsyncIterator[AgiProcess]:
    """`ivr12333 agi serve` on free ports, on the test database, in office hours."""
    async with agi_server_process(
        tmp_path / "agi.log",
        *("--metrics-port", "0", "--drain-seconds", "10"),
        *("--workers", "1"),  # one process, so one /metrics counts every call
        env=known_calls.SERVER_ENV,
        metrics_listeners=1,
    ) as served:
        yield served


def metrics_base(served: AgiProcess) -> str:
    (url,) = served.metrics_urls()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url), url
    return url.removesuffix("/metrics")


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_the_calls_made(agi_server: AgiProcess, issue: Any) -> None:
    """Six known calls (two served, one to an agent, one hung up, two ended by the IVR after
    wrong PINs, one lockout, one loss report): /metrics shows each count exactly, and the
    call table gets its rows."""
    async with httpx.AsyncClient(base_url=metrics_base(agi_server)) as http:
        before = samples((await http.get("/metrics")).text)
        assert value(before, "ivr12333_calls_in_progress") == 0
        placed = await known_calls.place(agi_server.port, issue)
        assert [t.ended for t in placed.transcripts] == [
            "caller-hangup",
            "caller-hangup",
            "agi-returned",
            "caller-hangup",
            "server-hangup",
            "server-hangup",
        ]
        assert placed.transcripts[2].variables["IVR_NEXT"] == "agent"
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    after = samples(response.text)
    for (script, outcome), count in known_calls.CALLS.items():
        got = value(after, "ivr12333_calls_total", script=script, outcome=outcome)
        assert got == count, (script, outcome, got)
    total = sum(v for (n, _), v in after.items() if n == "ivr12333_calls_total")
    assert total == known_calls.expected_total(known_calls.CALLS)
    for channel, count in known_calls.LOCKOUTS.items():
        assert value(after, "ivr12333_card_lockouts_total", channel=channel) == count
    for channel, count in known_calls.LOSS_REPORTS.items():
        assert value(after, "ivr12333_loss_reports_total", channel=channel) == count
    for service, count in known_calls.SELF_SERVICES.items():
        assert value(after, "ivr12333_self_services_total", service=service) == count
    assert value(after, "ivr12333_calls_in_progress") == 0
    assert value(after, "ivr12333_call_duration_seconds_count", outcome="served") == 2
    # Every command of every call was timed: the welcome's STREAM FILE once per main call.
    assert value(after, "ivr12333_agi_step_seconds_count", command="stream_file") >= 4
    assert value(after, "ivr12333_agi_step_seconds_count", command="get_data") >= 10
    assert value(after, "ivr12333_db_step_seconds_count", result="ok") >= 6
    assert value(after, "ivr12333_db_pool_limit") == 30
    assert value(after, "ivr12333_db_reachable") == 1

    async def recorded() -> bool:
        async with get_engine().connect() as conn:
            rows = await conn.execute(
                text("SELECT count(*) FROM call_outcomes WHERE ended_at > now() - interval '1 min'")
            )
            return bool(rows.scalar_one() >= 6)

    await known_calls.wait_for(recorded)


async def test_no_label_carries_a_keyed_number(agi_server: AgiProcess, issue: Any) -> None:
    """After calls keying card numbers, ID numbers and PINs from a known caller number, no
    label value in /metrics holds any of them, nor any run of four digits or more."""
    placed = await known_calls.place(agi_server.port, issue)
    async with httpx.AsyncClient(base_url=metrics_base(agi_server)) as http:
        exposition = (await http.get("/metrics")).text
    labels = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels += [v for k, v in sample.labels.items() if k not in ("le", "quantile")]
    assert "served" in labels and "ivr" in labels  # the scan reads real labels
    for label in labels:
        assert re.fullmatch(r"[a-z_-]+", label), label
    for number in placed.keyed:
        assert number not in exposition
        assert number[-4:] not in "".join(labels)


async def test_health_and_readiness_say_why(agi_server: AgiProcess) -> None:
    """/healthz is 200; /readyz is 200 "ready" while serving and 503 "not ready: draining"
    after SIGTERM while a call is still held; other paths and methods are refused."""
    async with httpx.AsyncClient(base_url=metrics_base(agi_server)) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert (await http.get("/nothing")).status_code == 404
        assert (await http.post("/metrics")).status_code == 405

        reader, writer = await asyncio.open_connection(HOST, agi_server.port)
        call = FakeCall(reader, writer, ["12345678#"], think_seconds=3.0)
        running = asyncio.create_task(call.run("echo", HOST, agi_server.port, "1380000", 30.0))
        async with asyncio.timeout(10):
            while not call.transcript.commands:  # noqa: ASYNC110 - the fake owns this list
                await asyncio.sleep(0.01)
        agi_server.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            while True:
                draining = await http.get("/readyz")
                if draining.status_code == 503:
                    break
                await asyncio.sleep(0.05)
        assert draining.text == "not ready: draining\n"
        assert (await http.get("/healthz")).status_code == 200
    await running
    async with asyncio.timeout(20):
        assert await agi_server.proc.wait() == 0


async def test_readiness_says_the_database_is_unreachable(tmp_path: Path) -> None:
    """A server whose database cannot be reached answers /readyz 503 and says so; a call
    it serves is counted, and its row, which cannot be written, is counted as dropped."""
    async with agi_server_process(
        tmp_path / "agi.log",
        *("--metrics-port", "0", "--workers", "1"),
        # Nothing listens on port 9 of loopback.
        env={"IVR_DATABASE_URL": "postgresql+asyncpg://nobody:x@127.0.0.1:9/none"},
        metrics_listeners=1,
    ) as served:
        url = metrics_base(served)
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/readyz")
            assert response.status_code == 503
            assert response.text.startswith("not ready: database unreachable")
            transcript = await run_call(HOST, served.port, "echo", ["12345678#"])
            assert transcript.variables == {"IVR_NEXT": "hangup"}
            found: dict[Any, float] = {}

            async def dropped() -> bool:
                found.update(samples((await http.get("/metrics")).text))
                return value(found, "ivr12333_call_records_dropped_total") == 1

            await known_calls.wait_for(dropped)
        # The call is counted although its row could not be written.
        assert value(found, "ivr12333_calls_total", script="echo", outcome="ended") == 1


async def test_a_taken_metrics_port_does_not_stop_calls(tmp_path: Path) -> None:
    """With its metrics port taken by another program, the server still takes calls and
    logs that it has no metrics listener."""
    import socket

    taken = socket.socket()
    taken.bind((HOST, 0))
    taken.listen()
    try:
        async with agi_server_process(
            tmp_path / "agi.log",
            *("--metrics-port", str(taken.getsockname()[1]), "--workers", "1"),
            env={"IVR_LOG_FILE": None},
        ) as served:
            transcript = await run_call(HOST, served.port, "echo", ["12345678#"])
            assert transcript.variables == {"IVR_NEXT": "hangup"}
            assert served.events("agi.metrics_unavailable")
    finally:
        taken.close()


def test_every_served_script_has_its_own_label() -> None:
    """The scripts label lists exactly the scripts the table serves (others are `other`)."""
    from backend import metrics
    from ivr.scripts import SCRIPTS

    assert set(metrics.SCRIPTS) == set(SCRIPTS)


async def test_unwritable_call_rows_cost_one_connection_attempt_a_second(tmp_path: Path) -> None:
    """With the database unreachable, calls ending one after another do not each try to
    connect to write their row: the writer tries once, then waits a second, so 30 calls
    in under a second cost at most a few attempts (each logged), and every row is counted
    as dropped."""
    async with agi_server_process(
        tmp_path / "agi.log",
        *("--no-metrics", "--workers", "1"),
        env={
            "IVR_DATABASE_URL": "postgresql+asyncpg://nobody:x@127.0.0.1:9/none",
            "IVR_LOG_LEVEL": "info",
        },
    ) as served:
        started = asyncio.get_running_loop().time()
        for _ in range(30):
            transcript = await run_call(HOST, served.port, "echo", ["12345678#"])
            assert transcript.variables == {"IVR_NEXT": "hangup"}
        elapsed = asyncio.get_running_loop().time() - started
        served.proc.send_signal(signal.SIGTERM)
        assert await served.proc.wait() == 0
    attempts = served.events("call_outcomes_not_recorded")
    # One attempt at the first call's end, then at most one a second (and one at the drain).
    assert 1 <= len(attempts) <= 2 + int(elapsed), (len(attempts), elapsed)
    assert sum(int(str(a["calls"])) for a in attempts) == 30


def test_loop_histogram_reads_as_a_prometheus_histogram() -> None:
    """The lock-free step histogram: an observation on a bound falls in that bound's bucket
    ("less than or equal"), buckets add up, and the parser reads it as a histogram."""
    from prometheus_client import CollectorRegistry, generate_latest

    from backend.metrics import LoopHistogram

    registry = CollectorRegistry()
    steps = LoopHistogram("t_step_seconds", "test", "command", ("a", "b"), (0.1, 1.0), registry)
    for amount in (0.05, 0.1, 0.5, 7.0):
        steps.child("a").observe(amount)
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    assert family.type == "histogram"
    got = {
        (s.name, s.labels.get("le")): s.value for s in family.samples if s.labels["command"] == "a"
    }
    assert got[("t_step_seconds_bucket", "0.1")] == 2
    assert got[("t_step_seconds_bucket", "1.0")] == 3
    assert got[("t_step_seconds_bucket", "+Inf")] == 4
    assert got[("t_step_seconds_count", None)] == 4
    assert got[("t_step_seconds_sum", None)] == pytest.approx(7.65)
    assert {s.labels["command"] for s in family.samples} == {"a", "b"}
