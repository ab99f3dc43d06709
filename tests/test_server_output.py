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
            env={**os.environ, **env, "IVR_LOG_LEVEL": "info"},
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
    """A call through `agi serve`: its ready lines and the call's events are JSON objects
    on stdout; stderr is empty."""
    out, err = tmp_path / "agi.out", tmp_path / "agi.err"
    proc = _serve(
        ["agi", "serve", "--host", HOST, "--port", "0", "--metrics-port", "0", "--workers", "1"],
        out,
        err,
        {},
    )
    try:
        ready = _wait_for(out, "listening", proc)
        _wait_for(out, "metrics listening", proc)
        transcript = await run_call(HOST, int(str(ready["port"])), "echo", ["12345678#"])
        assert transcript.heard[-1] == "goodbye"
        deadline = time.monotonic() + 10
        while not any(e.get("event") == "call.completed" for e in _json_lines(out)):
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
