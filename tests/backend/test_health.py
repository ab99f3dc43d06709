"""The small HTTP listener of backend.health: the three paths, readiness with its reason,
and requests that are not HTTP or too long."""

from __future__ import annotations

import asyncio

from backend.health import HEAD_LIMIT, start_listener


async def _exchange(port: int, raw: bytes) -> bytes:
    """Send `raw`, read to the end; a connection the server reset reads as nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def test_listener_answers_and_refuses() -> None:
    """/readyz carries the readiness reason; HEAD has no body; garbage gets 400, POST 405,
    an unknown path 404; a request head past the limit is closed without an answer."""
    problem: list[str | None] = [None]

    async def ready() -> str | None:
        return problem[0]

    server = await start_listener("127.0.0.1", 0, ready)
    port = server.sockets[0].getsockname()[1]
    try:
        ok = await _exchange(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\nready\n")
        problem[0] = "database unreachable (cannot connect)"
        bad = await _exchange(port, b"GET /readyz?x=1 HTTP/1.0\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert bad.endswith(b"not ready: database unreachable (cannot connect)\n")
        head = await _exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert b"Content-Type: text/plain; version=" in head
        assert (await _exchange(port, b"hello\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        assert (await _exchange(port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 405 "
        )
        assert (await _exchange(port, b"GET /x HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404 ")
        long_head = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (HEAD_LIMIT * 2) + b"\r\n\r\n"
        assert await _exchange(port, long_head) == b""
    finally:
        server.close()
        await server.wait_closed()
