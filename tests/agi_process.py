"""`ivr12333 agi serve` as a process of its own, for the tests that need a real one
(signals, workers, health checks, /metrics): started on a free port, its stdout and stderr
in one log file (never a pipe nobody reads, which a chatty server would fill and block
on), ready once it announces where it listens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from backend.logsetup import read_announcement

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AgiProcess:
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def events(self, name: str) -> list[dict[str, object]]:
        """Every JSON log line of the process whose event is `name`."""
        found = []
        for line in self.lines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == name:
                    found.append(event)
        return found

    def metrics_urls(self) -> list[str]:
        return [str(e["url"]) for e in self.events("metrics listening")]


@contextlib.asynccontextmanager
async def agi_server(
    log: Path,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    metrics_listeners: int = 0,
) -> AsyncIterator[AgiProcess]:
    """`agi serve --host 127.0.0.1 --port 0 ARGS`, yielded once it listens (and, when
    `metrics_listeners` is set, once that many /metrics listeners are up); killed after.
    `env` adds to the environment; a None value takes a variable out."""
    environment = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "cli.main", "agi", "serve", "--host", HOST, "--port", "0", *args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
            env=environment,
        )
    try:
        served = AgiProcess(proc, 0, log)
        async with asyncio.timeout(30):
            while True:
                ready = [read_announcement(line, "listening") for line in served.lines()]
                port = next((int(r["port"]) for r in ready if r is not None), 0)
                if port and len(served.metrics_urls()) >= metrics_listeners:
                    break
                assert proc.returncode is None, served.lines()[-20:]
                await asyncio.sleep(0.05)
        served.port = port
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def refuses_calls(port: int) -> bool:
    """Whether a connection to `port` on the loopback is refused."""
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the connection was still in the backlog of a listener being closed.
        return True
    writer.close()
    return False


async def wait_until_refused(port: int, seconds: float = 5.0) -> None:
    """Fails unless new connections to `port` are refused within `seconds` (a draining
    server closes its listener first)."""
    for _ in range(int(seconds / 0.05)):
        if await refuses_calls(port):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still accepting calls {seconds:g} s after SIGTERM")
