"""`ivr12333 agi check`, the FastAGI containers' health check, against `agi serve` as a process."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

from tests.agi_process import HOST, ROOT, agi_server


async def _check(port: int, wait_s: float = 1.0) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "agi",
        "check",
        "--host",
        HOST,
        "--port",
        str(port),
        "--timeout",
        str(wait_s),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), time.monotonic() - started


def _tcp_connects(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


async def test_check_tells_a_frozen_server_from_a_working_one(tmp_path: Path) -> None:
    """Healthy while serving; unhealthy within the timeout while the process is stopped
    (SIGSTOP), although a TCP connect still succeeds then; healthy again after SIGCONT; and
    the probes leave no warning in the server's log."""
    log = tmp_path / "agi.log"
    async with agi_server(
        log,
        "--workers",
        "1",  # one process to freeze: the server answering is the one stopped
        "--no-metrics",
        env={"IVR_LOG_LEVEL": "info"},
    ) as served:
        server, port = served.proc, served.port
        code, out, _ = await _check(port)
        assert code == 0, out
        assert "healthy" in out

        server.send_signal(signal.SIGSTOP)
        try:
            assert _tcp_connects(port)  # what a TCP probe would have called healthy
            code, out, took = await _check(port, wait_s=1.0)
            assert code != 0, out
            assert "timed out" in out, out
            assert "Traceback" not in out, out
            assert took < 10, took
        finally:
            server.send_signal(signal.SIGCONT)

        code, out, _ = await _check(port)
        assert code == 0, out

        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await server.wait()
        code, out, _ = await _check(port)
        assert code != 0, out
        assert "refused" in out.lower(), out
    text = log.read_text(encoding="utf-8")
    assert '"warning"' not in text and '"error"' not in text, text
