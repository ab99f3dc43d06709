"""What a container's log collector gets from the servers: every line on stdout a JSON
object (the ready lines too), nothing on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backend.logsetup import read_announcement
from ivr.fake_asterisk import run_call
from tests.agi_process import HOST, ROOT
from tests.sip_phones import free_tcp_port


def _json_lines(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]  # a plain line fails here
    assert all(isinstance(item, dict) for item in parsed), lines
    return parsed


def _serve(args: list[str], out: Path, err: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "IVR_LOG_LEVEL": "info", **env},
        )


def _wait_for(path: Path, event: str, proc: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in path.read_bytes().splitlines():
            found = read_announcement(line, event)
            if found is not None:
                return found
        assert proc.poll() is None, path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"no {event!r} line in {path}")


async def test_fastagi_server_logs_json_on_stdout(db: str, tmp_path: Path) -> None:
    """Calls through `agi serve` with two workers sharing one unbuffered stdout (as in a
    container): every line is one whole JSON object (the ready lines and the calls'
    events), never two workers' lines run together; stderr is empty."""
    out, err = tmp_path / "agi.out", tmp_path / "agi.err"
    proc = _serve(
        ["agi", "serve", "--host", HOST, "--port", "0", "--metrics-port", "0", "--workers", "2"],
        out,
        err,
        {"PYTHONUNBUFFERED": "1", "IVR_LOG_LEVEL": "debug"},
    )
    try:
        ready = _wait_for(out, "listening", proc)
        port = int(str(ready["port"]))
        transcripts = await asyncio.gather(
            *(run_call(HOST, port, "echo", ["12345678#"]) for _ in range(40))
        )
        assert all(t.heard[-1] == "goodbye" for t in transcripts)
        deadline = time.monotonic() + 10
        while sum(e.get("event") == "call.completed" for e in _json_lines(out)) < 40:
            assert time.monotonic() < deadline, out.read_text()
            await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    events = {str(e["event"]) for e in _json_lines(out)}
    assert {"listening", "metrics listening", "call.completed"} <= events, events
    assert err.read_bytes() == b""


def test_console_logs_json_on_stdout(database_url: str, tmp_path: Path) -> None:
    """`console serve` says where it serves and logs a request as JSON on stdout; stderr
    is empty."""
    out, err = tmp_path / "console.out", tmp_path / "console.err"
    port = free_tcp_port()
    proc = _serve(
        ["console", "serve", "--port", str(port)],
        out,
        err,
        {"IVR_DATABASE_URL": database_url},
    )
    try:
        started = _wait_for(out, "console starting", proc)
        assert started["url"] == f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(_json_lines(out)) >= 2, out.read_text()
    assert err.read_bytes() == b""


def test_each_log_line_is_one_write() -> None:
    """Each log line reaches the stream in one write, its newline included: two processes
    sharing an unbuffered stdout (the FastAGI workers in a container) cannot run their
    lines together, since each write of a line that short is atomic."""
    import io

    import structlog

    from backend.logsetup import configure_logging

    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def write(self, text: str) -> int:
            self.calls.append(text)
            return len(text)

    seen = Writes()
    saved, saved_config = sys.stdout, structlog.get_config()
    sys.stdout = seen
    try:
        configure_logging("info", None, "stdout")
        log = structlog.get_logger("test")
        log.info("first", n=1)
        log.info("second", n=2)
    finally:
        sys.stdout = saved
        structlog.configure(**saved_config)
    assert len(seen.calls) == 2, seen.calls
    assert all(call.endswith("}\n") and call.count("\n") == 1 for call in seen.calls)
    assert [json.loads(call)["event"] for call in seen.calls] == ["first", "second"]
