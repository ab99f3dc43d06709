"""`ivr12333 console check`, the console container's health check, against the served console."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.console.conftest import serve_console

ROOT = Path(__file__).resolve().parents[2]


def _check(port: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "console", "check", "--port", port, "--timeout", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_tells_a_frozen_or_stopped_console_from_a_working_one(database_url: str) -> None:
    """Healthy while serving; unhealthy while the process is stopped (SIGSTOP) and once
    it has exited; each answer within seconds."""
    with serve_console(database_url, "console-check") as served:
        port = served.url.rsplit(":", 1)[1]
        ok = _check(port)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "healthy" in ok.stdout

        served.process.send_signal(signal.SIGSTOP)
        try:
            frozen = _check(port)
        finally:
            served.process.send_signal(signal.SIGCONT)
        assert frozen.returncode != 0
        assert "timed out" in frozen.stderr, frozen.stderr
        assert "Traceback" not in frozen.stderr, frozen.stderr[-1500:]

        served.process.terminate()
        served.process.wait(timeout=15)
        gone = _check(port)
    assert gone.returncode != 0
    assert "refused" in gone.stderr.lower(), gone.stderr
