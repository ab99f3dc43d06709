"""The greenlet bridge: flows parked for reply lines and resumed by the socket, awaits of
coroutines in between, cancellation while parked, and flow greenlets used again."""

from __future__ import annotations

import asyncio
import contextvars
import socket
from collections.abc import AsyncIterator

import greenlet  # type: ignore[import-untyped]
import pytest

from ivr.agi import bridge
from ivr.agi.bridge import FlowGreenlet, await_, run_in_greenlet
from ivr.agi.errors import CallEnding
from ivr.agi.streams import AgiStream

CALL = contextvars.ContextVar[str]("call", default="none")


@pytest.fixture
async def pair() -> AsyncIterator[tuple[AgiStream, socket.socket]]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    _, stream = await asyncio.get_running_loop().create_connection(AgiStream, sock=ours)
    yield stream, theirs
    stream.close()
    theirs.close()


def read_line(stream: AgiStream, seconds: float = 2.0) -> bytes:
    """A flow's blocking read of one line."""
    line = stream.take_line()
    while line is None:
        stream.wait_line(seconds)
        line = stream.take_line()
    return line


async def test_lines_and_awaits_interleave(pair: tuple[AgiStream, socket.socket]) -> None:
    """A flow reads lines the socket hands it straight away and awaits coroutines in
    between; its result comes back through the task."""
    stream, theirs = pair
    loop = asyncio.get_running_loop()

    async def backend(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * 2

    def flow() -> list[object]:
        got: list[object] = [read_line(stream)]
        got.append(await_(backend(21)))
        got.append(read_line(stream))
        got.append(read_line(stream))  # two lines in one segment: the second is buffered
        return got

    loop.call_later(0.02, theirs.send, b"one\n")
    loop.call_later(0.1, theirs.send, b"two\nthree\n")
    assert await run_in_greenlet(flow) == [b"one\n", 42, b"two\n", b"three\n"]


async def test_silence_times_out_inside_the_flow(pair: tuple[AgiStream, socket.socket]) -> None:
    """No line within the limit raises TimeoutError in the flow, where it can be handled."""
    stream, _ = pair

    def flow() -> str:
        try:
            read_line(stream, 0.1)
        except TimeoutError:
            return "timed out"
        return "read"

    assert await asyncio.wait_for(run_in_greenlet(flow), 2.0) == "timed out"


async def test_the_peer_closing_ends_the_wait(pair: tuple[AgiStream, socket.socket]) -> None:
    stream, theirs = pair
    asyncio.get_running_loop().call_later(0.05, theirs.close)
    assert await asyncio.wait_for(run_in_greenlet(read_line, stream), 2.0) == b""


async def test_an_error_in_a_flow_resumed_by_the_socket_reaches_the_task(
    pair: tuple[AgiStream, socket.socket],
) -> None:
    """The flow raises after being switched into from `data_received`: the exception is
    the task's, not the event loop's."""
    stream, theirs = pair

    def flow() -> None:
        read_line(stream)
        raise KeyError("after the line")

    asyncio.get_running_loop().call_later(0.02, theirs.send, b"line\n")
    with pytest.raises(KeyError):
        await asyncio.wait_for(run_in_greenlet(flow), 2.0)


@pytest.mark.parametrize("polite", [True, False])
async def test_cancelled_while_parked(pair: tuple[AgiStream, socket.socket], polite: bool) -> None:
    """Cancelling the task of a parked flow throws CallEnding into it (during a drain) or
    the cancellation itself; the flow's own handling runs, and a line arriving afterwards
    resumes nothing."""
    stream, theirs = pair
    seen: list[str] = []

    def flow() -> None:
        try:
            read_line(stream, 30.0)
        except CallEnding:
            seen.append("call ending")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = asyncio.create_task(run_in_greenlet(flow, end_on_cancel=lambda: polite))
    await asyncio.sleep(0.05)
    task.cancel()
    if polite:
        await task
    else:
        with pytest.raises(asyncio.CancelledError):
            await task
    theirs.send(b"late\n")
    await asyncio.sleep(0.05)
    assert seen == ["call ending" if polite else "cancelled"]
    assert stream.take_line() == b"late\n"


async def test_flow_greenlets_are_used_again_without_the_last_calls_context(
    pair: tuple[AgiStream, socket.socket],
) -> None:
    """A finished call's greenlet serves the next call, which sees its own context only."""
    stream, theirs = pair
    used: list[int] = []
    values: list[str] = []

    def flow() -> None:
        used.append(id(greenlet.getcurrent()))
        values.append(CALL.get())
        read_line(stream)

    asyncio.get_running_loop().call_later(0.02, theirs.send, b"a\n")
    CALL.set("first")
    await run_in_greenlet(flow)
    asyncio.get_running_loop().call_later(0.02, theirs.send, b"b\n")
    await asyncio.to_thread(lambda: None)  # any await between the calls
    context = contextvars.Context()
    await context.run(asyncio.create_task, run_in_greenlet(flow))
    assert used[0] == used[1]
    assert values == ["first", "none"]
    assert not any(g.in_call for g in bridge._idle)


def test_waiting_for_a_line_outside_a_flow_is_refused() -> None:
    stream = AgiStream()
    with pytest.raises(RuntimeError):
        stream.wait_line(1.0)
    assert not isinstance(greenlet.getcurrent(), FlowGreenlet)


async def test_a_greenlet_not_kept_for_the_next_call_is_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no room among the idle greenlets, a finished flow's greenlet is ended, not
    dropped alive (a suspended greenlet in a cycle with its frame is never collected)."""
    monkeypatch.setattr(bridge, "IDLE_LIMIT", 0)
    seen: list[FlowGreenlet] = []

    def flow() -> None:
        seen.append(greenlet.getcurrent())

    await run_in_greenlet(flow)
    assert seen[0].dead
    assert seen[0] not in bridge._idle
