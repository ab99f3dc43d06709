"""Health, readiness and metrics over HTTP, for the processes that have no web server of
their own (the FastAGI servers); the console serves the same paths itself.

    /healthz   200 while the process's event loop answers
    /readyz    200 "ready", or 503 "not ready: <why>" (draining, database unreachable)
    /metrics   Prometheus' text format (backend.metrics)

The listener is deliberately small: GET or HEAD, one request per connection, the request
head read whole within a few seconds and a few KiB, or the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from backend import metrics
from backend.errors import ServiceUnavailable

log = structlog.get_logger(__name__)

HEAD_LIMIT = 8192
HEAD_TIMEOUT = 5.0
# A readiness probe checks the database at most this often; probes in between reuse it.
DB_CHECK_EVERY = 1.0

Readiness = Callable[[], Awaitable[str | None]]

_last_check = (0.0, "")


async def database_problem() -> str | None:
    """Why the database cannot serve right now, in words, or None."""
    global _last_check
    checked_at, problem = _last_check
    if time.monotonic() - checked_at < DB_CHECK_EVERY:
        return problem or None
    from backend.db.engine import get_gate
    from backend.services.common import transaction

    if get_gate().shut:
        problem = "database unreachable (retrying)"
    else:
        try:
            async with transaction() as conn:
                await conn.execute(text("SELECT 1"))
            problem = ""
        except ServiceUnavailable as exc:
            problem = f"database unreachable ({exc})"
    _last_check = (time.monotonic(), problem)
    return problem or None


def _response(status: str, body: bytes, content_type: str, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + body


async def answer(path: str, ready: Readiness) -> tuple[str, bytes, str]:
    """Status line, body and content type for one of the three paths."""
    plain = "text/plain; charset=utf-8"
    if path == "/metrics":
        return "200 OK", generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST
    if path == "/healthz":
        return "200 OK", b"ok\n", plain
    if path == "/readyz":
        problem = await ready()
        if problem is None:
            return "200 OK", b"ready\n", plain
        return "503 Service Unavailable", f"not ready: {problem}\n".encode(), plain
    return "404 Not Found", b"not found\n", plain


async def _serve_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ready: Readiness
) -> None:
    try:
        async with asyncio.timeout(HEAD_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        writer.close()
        return
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    plain = "text/plain; charset=utf-8"
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        reply = _response("400 Bad Request", b"bad request\n", plain, False)
    elif parts[0] not in ("GET", "HEAD"):
        reply = _response("405 Method Not Allowed", b"GET or HEAD only\n", plain, False)
    else:
        status, body, content_type = await answer(parts[1].split("?", 1)[0], ready)
        reply = _response(status, body, content_type, parts[0] == "HEAD")
    writer.write(reply)
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(HEAD_TIMEOUT):
            await writer.drain()
    writer.close()


async def start_listener(host: str, port: int, ready: Readiness) -> asyncio.Server:
    """Listen on host:port (0: any free port) for /healthz, /readyz and /metrics."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve_one(reader, writer, ready)
        except Exception:
            log.exception("health.server_error")
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=HEAD_LIMIT)
