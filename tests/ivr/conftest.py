"""The real FastAGI server on a loopback port, with flows a test registers for itself."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from ivr.agi.bridge import run_in_greenlet
from ivr.agi.channel import AgiChannel, QuietAGI
from ivr.agi.streams import AgiStream, LineReader, LineWriter
from ivr.caller import Caller
from ivr.fake_asterisk import Transcript, run_call
from ivr.server import AgiServer

T = TypeVar("T")
_names = (f"t{n}" for n in itertools.count())


@dataclass
class Line:
    """A running server and what the flows under test saw."""

    server: AgiServer
    port: int
    scripts: dict[str, Callable[[Caller], None]]
    # What each test flow returned or raised, in order.
    results: list[Any] = field(default_factory=list)

    def script(self, flow: Callable[[Caller], Any]) -> str:
        """Register `flow` under a fresh name; its return value or exception is recorded."""
        name = next(_names)

        def recorded(caller: Caller) -> None:
            try:
                self.results.append(flow(caller))
            except Exception as exc:
                self.results.append(exc)
                raise

        self.scripts[name] = recorded
        return name

    async def call(
        self, flow: Callable[[Caller], Any], keys: Sequence[str] = (), **options: Any
    ) -> Transcript:
        return await run_call("127.0.0.1", self.port, self.script(flow), keys, **options)


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    """A server for this test; any unexpected exception in it fails the test."""
    scripts: dict[str, Callable[[Caller], None]] = {}
    server = AgiServer(scripts, drain_seconds=2.0, header_timeout=0.5)
    port = await server.start("127.0.0.1", 0)
    yield Line(server, port, scripts)
    await server.drain()
    assert not server.errors, server.errors


async def calls_held(server: AgiServer, count: int) -> None:
    """Wait until `count` calls are in progress on `server`."""
    async with asyncio.timeout(5.0):
        while server.active_calls < count:  # noqa: ASYNC110 - polls a counter the server owns
            await asyncio.sleep(0.01)


CLOSE = object()  # in a reply script: Asterisk closes the socket instead of replying


async def over_socket(
    replies: Sequence[str | object], body: Callable[[AgiChannel], T]
) -> tuple[T | Exception, list[str]]:
    """Run `body` on a channel whose Asterisk answers each command with the next reply.

    Returns what `body` returned (or raised) and the command lines Asterisk received.
    """
    commands: list[str] = []
    finished = asyncio.Event()

    async def asterisk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        finally:
            writer.close()
            finished.set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            line = await reader.readline()
            if not line:
                break
            commands.append(line.decode().rstrip("\n"))
            if reply is CLOSE:
                break
            assert isinstance(reply, str)
            writer.write(reply.encode())
            await writer.drain()

    listener = await asyncio.start_server(asterisk, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    _, stream = await asyncio.get_running_loop().create_connection(AgiStream, "127.0.0.1", port)
    agi = QuietAGI({}, LineReader(stream, 2.0), LineWriter(stream))

    def run() -> T | Exception:
        try:
            return body(AgiChannel(agi))
        except Exception as exc:
            return exc

    try:
        result = await run_in_greenlet(run)
    finally:
        stream.close()
        listener.close()
    async with asyncio.timeout(2.0):
        await finished.wait()  # every command sent has been recorded
    return result, commands
