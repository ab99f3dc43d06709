"""A login flood against the real `ivr12333 console serve` process, with production's
argon2 cost (64 MiB a hash): the process's memory stays bounded and every login the hash
pool cannot take is refused at once with the 503 login page."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path

import httpx

from tests.console.conftest import serve_console

FLOOD_SECONDS = 4.0
LOOPS = 20
MIB = 1024 * 1024
HASH_MIB = 64  # argon2-cffi's default memory cost, which the served console keeps


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


async def _loop(url: str, address: str, statuses: list[int], busy_pages: list[str]) -> None:
    """One attacker behind the proxy: log in with made-up names and passwords as fast as
    answers come."""
    forwarded = {"X-Forwarded-For": address}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=forwarded) as http:
        page = await http.get("/login")
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert found
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            form = {
                "csrf_token": found.group(1),
                "username": f"nobody{secrets.token_hex(4)}",
                "password": secrets.token_urlsafe(12),
            }
            answer = await http.post("/login", data=form)
            statuses.append(answer.status_code)
            if answer.status_code == 503 and len(busy_pages) < 3:
                busy_pages.append(answer.text)


async def test_login_flood_keeps_the_served_console_small(database_url: str) -> None:
    """20 concurrent login loops for 4 s, each from its own address behind a trusted proxy
    (so no login budget fills and only the hash pool bounds them): peak memory stays within
    two hashes' worth plus slack of the warmed-up process, and the surplus is answered 503
    without a hash."""
    with serve_console(
        database_url,
        "console-flood",
        # The served console keeps production's hash cost, not the tests' cheap one.
        IVR_PASSWORD_HASH_TIME_COST="",
        IVR_PASSWORD_HASH_MEMORY_KIB="",
        IVR_CONSOLE_TRUSTED_PROXIES="127.0.0.1",
    ) as served:
        pid = served.process.pid
        # Warm up: the first unknown username makes the stand-in hash, then one check runs.
        warm: list[int] = []
        await _loop_once(served.url, warm)
        before = _memory_kib(pid, "VmRSS")
        statuses: list[int] = []
        busy_pages: list[str] = []
        addresses = [f"203.0.113.{i + 1}" for i in range(LOOPS)]
        await asyncio.gather(*(_loop(served.url, a, statuses, busy_pages) for a in addresses))
        peak = _memory_kib(pid, "VmHWM")
    grown_mib = (peak - before) / 1024
    # No 429: each loop's address has its own budget, so the proxy's header was believed.
    assert set(statuses) <= {401, 503}, sorted(set(statuses))
    assert statuses.count(503) > 0 and statuses.count(401) > 0
    # Two pool workers hash at a time: 2 x 64 MiB, plus the interpreter's own slack.
    assert grown_mib < 2 * HASH_MIB + 64, f"grew {grown_mib:.0f} MiB over {len(statuses)} logins"
    for page in busy_pages:
        assert "登录人数较多" in page and 'action="/login"' in page


async def _loop_once(url: str, statuses: list[int]) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.250"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=forwarded) as http:
        page = await http.get("/login")
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert found
        form = {"csrf_token": found.group(1), "username": "nobody", "password": "x" * 12}
        statuses.append((await http.post("/login", data=form)).status_code)
