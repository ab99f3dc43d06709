"""`ivr12333 agi serve` as a process: SIGTERM stops new calls, lets calls finish, exits 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from ivr.fake_asterisk import FakeCall
from tests.agi_process import HOST, agi_server, wait_until_refused


async def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    """After SIGTERM new connections are refused, the call in progress completes, exit 0."""
    async with agi_server(
        tmp_path / "agi.log", "--drain-seconds", "10", "--workers", "1"
    ) as served:
        proc, port = served.proc, served.port
        reader, writer = await asyncio.open_connection(HOST, port)
        call = FakeCall(reader, writer, ["12345678#"], think_seconds=1.0)
        running = asyncio.create_task(call.run("echo", HOST, port, "13800138000", 20.0))
        async with asyncio.timeout(10):
            while not call.transcript.commands:  # noqa: ASYNC110 - the fake owns this list
                await asyncio.sleep(0.01)

        proc.send_signal(signal.SIGTERM)
        await wait_until_refused(port)

        transcript = await running
        assert transcript.heard[-1] == "goodbye"
        assert transcript.heard.count("digit-8") == 1
        assert transcript.variables == {"IVR_NEXT": "hangup"}
        assert transcript.ended == "agi-returned"
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
