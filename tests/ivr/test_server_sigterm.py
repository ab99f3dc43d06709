"""`ivr12333 agi serve` as a process: SIGTERM stops new calls, lets calls finish, exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from ivr.fake_asterisk import FakeCall

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    """After SIGTERM new connections are refused, the call in progress completes, exit 0."""
    stderr = (tmp_path / "stderr.log").open("wb")
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
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            ready = (await proc.stdout.readline()).decode()
        assert ready.startswith(f"listening on {HOST}:"), ready
        port = int(ready.rsplit(":", 1)[1])

        reader, writer = await asyncio.open_connection(HOST, port)
        call = FakeCall(reader, writer, ["12345678#"], think_seconds=1.0)
        running = asyncio.create_task(call.run("echo", HOST, port, "13800138000", 20.0))
        async with asyncio.timeout(10):
            while not call.transcript.commands:  # noqa: ASYNC110 - the fake owns this list
                await asyncio.sleep(0.01)

        proc.send_signal(signal.SIGTERM)
        for _ in range(100):
            if await _refused(port):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("still accepting calls 5 s after SIGTERM")

        transcript = await running
        assert transcript.heard[-1] == "goodbye"
        assert transcript.heard.count("digit-8") == 1
        assert transcript.variables == {"IVR_NEXT": "hangup"}
        assert transcript.ended == "agi-returned"
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        stderr.close()
