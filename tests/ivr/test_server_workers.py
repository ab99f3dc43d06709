"""`ivr12333 agi serve --workers 2`: two processes on one port (SO_REUSEPORT), drained
together on SIGTERM, restarted when one dies, gone when their parent is killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.fake_asterisk import FakeCall, Transcript, run_call

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def worker_pids(self) -> list[int]:
        return [int(str(e["pid"])) for e in self.events("agi.worker.started")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent (the killed server) is not there to reap it.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            "agi",
            "serve",
            "--host",
            HOST,
            "--port",
            "0",
            "--drain-seconds",
            "10",
            "--workers",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
        )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            # Each worker says where its metrics are; the parent says when all listen.
            ready = (await proc.stdout.readline()).decode()
            while ready.startswith("metrics on "):
                ready = (await proc.stdout.readline()).decode()
        assert ready.startswith(f"listening on {HOST}:"), ready
        yield Served(proc, int(ready.rsplit(":", 1)[1]), log)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_drains_every_worker(served: Served) -> None:
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
    for _ in range(100):
        if await _refused(served.port):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("still accepting calls 5 s after SIGTERM")

    transcripts: list[Transcript] = [await task for _, task in calls]
    for transcript in transcripts:
        assert transcript.heard[-1] == "goodbye"
        assert transcript.variables == {"IVR_NEXT": "hangup"}
    async with asyncio.timeout(15):
        assert await served.proc.wait() == 0
    workers = {event["worker"] for event in served.events("call.completed")}
    assert workers == {0, 1}, "both workers took calls on the one port"
    assert len(served.events("call.completed")) == 12


async def test_dead_worker_is_replaced(served: Served) -> None:
    """A worker killed outright is started again, and calls go on being answered."""
    first, _ = served.worker_pids()
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


async def test_killing_the_parent_ends_the_workers(served: Served) -> None:
    """SIGKILL to the parent takes its workers with it: nothing keeps serving the port."""
    pids = served.worker_pids()
    assert len(pids) == 2
    served.proc.kill()
    await served.proc.wait()
    async with asyncio.timeout(5):
        while any(_alive(pid) for pid in pids):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await _refused(served.port)


async def test_each_worker_serves_its_own_metrics(tmp_path: Path) -> None:
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
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "cli.main", "agi", "serve", "--host", HOST, "--port", "0"),
        *("--workers", "2", "--metrics-port", str(metrics_port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not (lines and lines[-1].startswith("listening on")):
                lines.append((await proc.stdout.readline()).decode())
        port = int(lines[-1].rsplit(":", 1)[1])
        for _ in range(8):
            await run_call(HOST, port, "echo", ["12345678#"])
        total = 0.0
        async with httpx.AsyncClient() as http:
            for k in range(2):
                base = f"http://{HOST}:{metrics_port + k * METRICS_WORKER_STRIDE}"
                assert (await http.get(f"{base}/readyz")).status_code == 200
                text = (await http.get(f"{base}/metrics")).text
                for line in text.splitlines():
                    if line.startswith("ivr12333_calls_total{") and 'script="echo"' in line:
                        total += float(line.rsplit(" ", 1)[1])
        assert total == 8
    finally:
        proc.kill()
        await proc.wait()
