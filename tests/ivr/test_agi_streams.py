"""The connection protocol's reply time limit: one timer per connection, moved, not remade."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from ivr.agi.channel import AgiChannel
from ivr.agi.errors import CallerHungUp
from ivr.agi.streams import AgiStream, LineTooLong

from .conftest import over_socket


@pytest.fixture
async def pair() -> AsyncIterator[tuple[AgiStream, socket.socket]]:
    ours, theirs = socket.socketpair()
    _, stream = await asyncio.get_running_loop().create_connection(AgiStream, sock=ours)
    yield stream, theirs
    stream.close()
    theirs.close()


async def test_a_longer_wait_outlives_the_timer_of_a_shorter_one(
    pair: tuple[AgiStream, socket.socket],
) -> None:
    """The timer armed for a 0.2 s wait fires during a later 2 s wait: it moves to the new
    deadline instead of failing that wait early."""
    stream, theirs = pair
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, theirs.sendall, b"first\n")
    assert await stream.readline(0.2) == b"first\n"
    loop.call_later(0.6, theirs.sendall, b"second\n")
    assert await stream.readline(2.0) == b"second\n"


async def test_a_shorter_wait_after_a_longer_one_ends_on_time(
    pair: tuple[AgiStream, socket.socket],
) -> None:
    """A 0.2 s wait after a 30 s one gives up after about 0.2 s, not 30."""
    stream, theirs = pair
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, theirs.sendall, b"first\n")
    assert await stream.readline(30.0) == b"first\n"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await stream.readline(0.2)
    assert time.monotonic() - started < 2.0


async def test_over_long_line(pair: tuple[AgiStream, socket.socket]) -> None:
    """More than the line limit without a newline is refused, not buffered further."""
    stream, theirs = pair
    theirs.sendall(b"x" * 9000)
    with pytest.raises(LineTooLong):
        await stream.readline(2.0)


async def test_end_of_stream(pair: tuple[AgiStream, socket.socket]) -> None:
    """A last line without its newline comes out whole, then a closed peer reads as b""."""
    stream, theirs = pair
    theirs.sendall(b"HANGUP")
    theirs.close()
    assert await stream.readline(2.0) == b"HANGUP"
    assert await stream.readline(2.0) == b""


async def test_limit_reply_wait_shortens_a_channel_wait() -> None:
    """After a command answered under the 2 s limit, `limit_reply_wait(0.2)` makes a
    silent Asterisk a hang-up after about 0.2 s."""

    def body(ch: AgiChannel) -> float:
        ch.verbose("first")
        ch.limit_reply_wait(0.2)
        started = time.monotonic()
        try:
            ch.verbose("second")
        except CallerHungUp:
            return time.monotonic() - started
        raise AssertionError("a reply came")

    result, _ = await over_socket(["200 result=1\n", ""], body)
    assert isinstance(result, float) and result < 1.5
