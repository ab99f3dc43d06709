"""One FastAGI socket as lines in and bytes out, and the file-like ends pyst2 talks to.

`AgiStream` is the connection's asyncio protocol: it keeps what Asterisk sent in one buffer
and hands out whole lines. A line already there costs no wait at all; otherwise a call's
flow parks and `data_received` switches straight back into it (`ivr.agi.bridge.resume`),
and a coroutine awaits a future. The reply time limit is one timer per connection, moved
only when it fires early, not a timer per read: per AGI command this is one buffer split
and two greenlet switches, where a StreamReader under `asyncio.timeout` made several
objects, a timer and a task wake-up each time.

`LineReader` and `LineWriter` are what pyst2 reads replies from and writes commands to.
"""

from __future__ import annotations

import asyncio
from typing import cast

from ivr.agi.bridge import FlowGreenlet, await_, park, park_for_line, resume
from ivr.agi.errors import AgiProtocolError, CallerHungUp

# Asterisk's lines are short; a longer one is not Asterisk (and must not grow a buffer).
LINE_LIMIT = 8192


class LineTooLong(ValueError):
    """More than LINE_LIMIT bytes arrived without a newline."""


class AgiStream(asyncio.Protocol):
    """The protocol of one FastAGI connection (either side: the server or a test's
    Asterisk). Lines come out with their newline; `b""` means the peer closed."""

    def __init__(self, limit: int = LINE_LIMIT) -> None:
        self.transport: asyncio.Transport | None = None
        # Kept, not asked for: `asyncio.get_running_loop()` makes a getpid() system call
        # on Python 3.11, and every wait for a line needs the loop's clock.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._limit = limit
        self._buffer = bytearray()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        # A call's flow parked until a line (or the end, or the time limit) is there.
        self._reader: FlowGreenlet | None = None
        # The reply time limit: when the wait in progress gives up, and the one timer
        # that checks it (moved forward only when it fires before that time).
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" in data or len(self._buffer) > self._limit:
            reader = self._reader
            if reader is not None:
                self._reader = None
                resume(reader)
                return
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool:
        self._closed = True
        self._wake()
        return False  # close the transport: Asterisk never half-closes a live call

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- reading ---------------------------------------------------------------------------

    def _wake(self, error: BaseException | None = None) -> None:
        reader = self._reader
        if reader is not None:
            self._reader = None
            resume(reader, error)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def take_line(self) -> bytes | None:
        """The next whole line if one is buffered, `b""` once the peer closed and nothing
        is left, else None. Raises LineTooLong for an over-long line."""
        buffer = self._buffer
        end = buffer.find(b"\n", 0, self._limit + 1)
        if end >= 0:
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            return line
        if len(buffer) > self._limit:
            raise LineTooLong(f"line longer than {self._limit} bytes")
        if self._closed:
            line = bytes(buffer)
            buffer.clear()
            return line  # a last line without its newline, or b""
        return None

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def ended(self) -> bool:
        """Whether the peer closed (what is buffered is all there will be)."""
        return self._closed

    @property
    def buffered(self) -> bytearray:
        """What has arrived and not been taken (read it, then `discard` what was used)."""
        return self._buffer

    def discard(self, count: int) -> None:
        del self._buffer[:count]

    def line_ready(self, seconds: float) -> asyncio.Future[None]:
        """A future done when a line (or the end) may be taken, or failing with
        TimeoutError after `seconds` (for coroutines)."""
        loop = self._running_loop()
        waiter = loop.create_future()
        self._waiter = waiter
        self._limit_wait(loop, seconds)
        return waiter

    def wait_line(self, seconds: float) -> None:
        """From a call's flow: return once a line (or the end) may be taken; raise
        TimeoutError after `seconds`. The flow parks; `data_received` resumes it."""
        flow = park_for_line()
        self._limit_wait(self._running_loop(), seconds)
        self._reader = flow
        try:
            park(flow)
        finally:
            self._reader = None  # also when something else ended the wait (a cancellation)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop or asyncio.get_running_loop()

    def _limit_wait(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._deadline = loop.time() + seconds
        if self._timer is None or self._timer_at > self._deadline:
            self._arm(loop, self._deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if self._reader is None and (waiter is None or waiter.done()):
            return  # nothing waiting: the next wait arms the timer again
        loop = self._running_loop()
        if loop.time() >= self._deadline:
            self._wake(TimeoutError())
        else:
            self._arm(loop, self._deadline)

    async def readline(self, seconds: float) -> bytes:
        """The next line, waiting at most `seconds` (from a coroutine)."""
        while True:
            line = self.take_line()
            if line is not None:
                return line
            await self.line_ready(seconds)

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def send(self, data: bytes) -> bool:
        """Write `data` unless the connection is closing (then False)."""
        transport = self.transport
        if self._closed or transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    def must_wait_to_write(self) -> bool:
        return self._write_paused and not self._closed

    def drained(self) -> asyncio.Future[None]:
        """A future done once the transport takes writes again (or the peer left)."""
        drained = self._drained
        if drained is None or drained.done():
            drained = self._drained = self._running_loop().create_future()
        if not self.must_wait_to_write():
            drained.set_result(None)
        return drained

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class NullSink:
    """A write-only sink: pyst2 logs every command and result (keys included) to it."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class LineReader:
    """`readline()` that waits for the next line from Asterisk, at most `timeout` seconds.

    Returns `""` at end of stream, like a file. A silent peer raises CallerHungUp (nobody
    is there to talk to); an over-long line raises AgiProtocolError.
    """

    def __init__(self, stream: AgiStream, timeout: float) -> None:
        self._stream = stream
        self.timeout = timeout

    def readline(self) -> str:
        stream = self._stream
        try:
            # The reply is rarely there yet: Asterisk has only just been sent the command.
            line = stream.take_line() if stream.buffered or stream.ended else None
            while line is None:
                stream.wait_line(self.timeout)
                line = stream.take_line()
        except TimeoutError:
            raise CallerHungUp(f"no reply from Asterisk within {self.timeout:g} s") from None
        except LineTooLong as exc:
            raise AgiProtocolError("reply line too long") from exc
        return line.decode("utf-8", errors="replace")


class LineWriter:
    """Sends command lines: `send_line` at once, or `write()`s buffered until `flush()`
    (pyst2's way, flushing after each command)."""

    def __init__(self, stream: AgiStream) -> None:
        self._stream = stream
        self._pending: list[str] = []

    def write(self, text: str) -> int:
        self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        if not self._pending:
            return
        data = "".join(self._pending).encode("utf-8")
        self._pending.clear()
        self._send(data)

    def send_line(self, line: str) -> None:
        """Send one command line (the newline is added)."""
        if self._pending:
            self.flush()
        self._send(f"{line}\n".encode())

    def _send(self, data: bytes) -> None:
        stream = self._stream
        if not stream.send(data):
            raise CallerHungUp("connection closed")
        if stream.must_wait_to_write():
            await_(stream.drained())
