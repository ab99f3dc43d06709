"""`ivr12333 agi serve --workers 2`: two processes on one port (SO_REUSEPORT), drained
together on SIGTERM, restarted when one dies, gone when their parent is killed."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.fake_asterisk import FakeCall, Transcript, run_call
from tests.agi_process import HOST, AgiProcess, agi_server, wait_until_refused


def _worker_pids(served: AgiProcess) -> list[int]:
    return [int(str(e["pid"])) for e in served.events("agi.worker.started")]


def _listening(port: int) -> bool:
    """Whether any socket on this host listens on TCP `port` (/proc/net/tcp, tcp6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent (the killed server) is not there to reap it.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[AgiProcess]:
    async with agi_server(
        tmp_path / "agi.log", "--drain-seconds", "10", "--workers", "2"
    ) as server:
        yield server


async def test_sigterm_drains_every_worker(served: AgiProcess) -> None:
    """Calls in progress on both workers all finish after SIGTERM; new ones are refused;
    the parent exits 0 once both workers drained."""
    calls = []
    for _ in range(12):
        reader, writer = await asyncio.open_connection(HOST, served.port)
        call = FakeCall(reader, writer, ["12345678#"], think_seconds=1.5)
        calls.append((call, asyncio.create_task(call.run("echo", HOST, served.port, "", 30.0))))
    async with asyncio.timeout(10):
        while not all(call.transcript.commands for call, _ in calls):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    served.proc.send_signal(signal.SIGTERM)
    await wait_until_refused(served.port)

    transcripts: list[Transcript] = [await task for _, task in calls]
    for transcript in transcripts:
        assert transcript.heard[-1] == "goodbye"
        assert transcript.variables == {"IVR_NEXT": "hangup"}
    async with asyncio.timeout(15):
        assert await served.proc.wait() == 0
    workers = {event["worker"] for event in served.events("call.completed")}
    assert workers == {0, 1}, "both workers took calls on the one port"
    assert len(served.events("call.completed")) == 12


async def test_dead_worker_is_replaced(served: AgiProcess) -> None:
    """A worker killed outright is started again, and calls go on being answered."""
    first, _ = _worker_pids(served)
    os.kill(first, signal.SIGKILL)
    async with asyncio.timeout(10):
        while not served.events("agi.worker.restarted"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    # Give the new worker a moment to listen; until then the other one takes every call.
    await asyncio.sleep(1.0)
    transcripts = await asyncio.gather(
        *(run_call(HOST, served.port, "echo", ["42#"]) for _ in range(10))
    )
    assert all(t.heard[-1] == "goodbye" for t in transcripts)
    assert served.events("agi.worker.died")[0]["pid"] == first


async def test_killing_the_parent_ends_the_workers(served: AgiProcess) -> None:
    """SIGKILL to the parent takes its workers with it: nothing keeps serving the port."""
    pids = _worker_pids(served)
    assert len(pids) == 2
    assert _listening(served.port)
    served.proc.kill()
    await served.proc.wait()
    # Whether the port is served is asked of the kernel, not by connecting: a connect to a
    # free port in the ephemeral range can, rarely, pick that same port as its source and
    # connect to itself. A worker's main thread shows as a zombie while its other threads
    # (the hashing pool's) still exit and hold its socket, so both are waited for.
    async with asyncio.timeout(5):
        while any(_alive(pid) for pid in pids) or _listening(served.port):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_each_worker_serves_its_own_metrics(db: str, tmp_path: Path) -> None:
    """With two workers and metrics port P, worker 0 answers /readyz on P and worker 1 on
    P + 100; calls made are counted by the worker that served them, so the two /metrics
    add up to every call."""
    import socket

    import httpx

    from ivr.workers import METRICS_WORKER_STRIDE

    def free_pair() -> int:
        while True:
            with socket.socket() as a:
                a.bind((HOST, 0))
                port: int = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind((HOST, port + METRICS_WORKER_STRIDE))
                except OSError:
                    continue
            return port

    metrics_port = free_pair()
    async with agi_server(
        tmp_path / "agi.log",
        *("--workers", "2", "--metrics-port", str(metrics_port)),
        metrics_listeners=2,
    ) as served:
        for _ in range(8):
            await run_call(HOST, served.port, "echo", ["12345678#"])
        total = 0.0
        async with httpx.AsyncClient() as http:
            for k in range(2):
                base = f"http://{HOST}:{metrics_port + k * METRICS_WORKER_STRIDE}"
                ready = await http.get(f"{base}/readyz")
                assert ready.status_code == 200, (ready.text, served.lines()[-10:])
                text = (await http.get(f"{base}/metrics")).text
                for line in text.splitlines():
                    if line.startswith("ivr12333_calls_total{") and 'script="echo"' in line:
                        total += float(line.rsplit(" ", 1)[1])
        assert total == 8
