"""File-like objects over an asyncio stream, for synchronous code running in a flow greenlet.

pyst2 talks to Asterisk through `readline()`, `write()` and `flush()`; these adapters do
those on the call's StreamReader/StreamWriter, waiting on the loop through `await_`.
"""

from __future__ import annotations

import asyncio

from ivr.agi.bridge import await_
from ivr.agi.errors import AgiProtocolError, CallerHungUp

# Beyond this much unsent data, wait for Asterisk to read before writing more.
_WRITE_HIGH_WATER = 64 * 1024


class NullSink:
    """A write-only sink: pyst2 logs every command and result (keys included) to it."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


async def _read_line(reader: asyncio.StreamReader, seconds: float) -> bytes:
    async with asyncio.timeout(seconds):
        return await reader.readline()


class LineReader:
    """`readline()` that waits for the next line from Asterisk, at most `timeout` seconds.

    Returns `""` at end of stream, like a file. A silent peer raises CallerHungUp (nobody
    is there to talk to); an over-long line raises AgiProtocolError.
    """

    def __init__(self, reader: asyncio.StreamReader, timeout: float) -> None:
        self._reader = reader
        self.timeout = timeout

    def readline(self) -> str:
        try:
            raw = await_(_read_line(self._reader, self.timeout))
        except TimeoutError:
            raise CallerHungUp(f"no reply from Asterisk within {self.timeout:g} s") from None
        except ValueError as exc:  # the StreamReader's line limit
            raise AgiProtocolError("reply line too long") from exc
        except ConnectionError as exc:
            raise CallerHungUp("connection lost") from exc
        return raw.decode("utf-8", errors="replace")


class LineWriter:
    """Buffers `write()`s and sends them on `flush()` (pyst2 flushes after each command)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[str] = []

    def write(self, text: str) -> int:
        self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        if not self._pending:
            return
        data = "".join(self._pending).encode("utf-8")
        self._pending.clear()
        if self._writer.is_closing():
            raise CallerHungUp("connection closed")
        self._writer.write(data)
        if self._writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            try:
                await_(self._writer.drain())
            except ConnectionError as exc:
                raise CallerHungUp("connection lost") from exc
