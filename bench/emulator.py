"""The Asterisk side of one FastAGI call running `echo`, lean enough for thousands at once.

Not `ivr.fake_asterisk`: that one records a transcript, splits every command with shlex and
reads through a StreamReader and a task per line, which at 5,000 calls would be the client's
own cost showing up in every step it measures. This one answers the few commands `echo`
sends from one buffer per call, with the replies `ivr.fake_asterisk` gives."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import cast

from bench.stats import Stats
from ivr.fake_asterisk import agi_environment

HOST = "127.0.0.1"
SCRIPT = "echo"
# Asterisk's lines are short; anything longer means the stream is not a server's command.
LINE_LIMIT = 8192
CONNECT_TIMEOUT = 10.0
# Beyond the caller's own waiting, how long a call may take before it counts as stuck.
CALL_SLACK_SECONDS = 30.0

# Replies as Asterisk 22 words them (res_agi.c); the same table as ivr.fake_asterisk.
REPLY_OK = b"200 result=0\n"
REPLY_ONE = b"200 result=1\n"
REPLY_STREAMED = b"200 result=0 endpos=16000\n"
REPLY_CHANNEL_UP = b"200 result=6\n"
REPLY_INVALID = b"510 Invalid or unknown command\n"


_unique_ids = itertools.count(1)


def environment(port: int) -> bytes:
    unique_id = f"1790000000.{next(_unique_ids)}"
    caller = f"138{random.randrange(10**8):08d}"
    lines = [f"{k}: {v}\n" for k, v in agi_environment(SCRIPT, HOST, port, caller, unique_id)]
    return ("".join(lines) + "\n").encode()


class EmulatedCall(asyncio.Protocol):
    """The Asterisk side of one FastAGI call running `echo`.

    A Protocol rather than streams: thousands of calls on one loop, and the client's own
    overhead lands in every step it measures.
    """

    def __init__(
        self, stats: Stats, env: bytes, digits: str, by_hash: bool, key_wait: float
    ) -> None:
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._stats = stats
        self._env = env
        self._digits = digits
        self._by_hash = by_hash
        self._key_wait = key_wait
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._sent_at = 0.0
        self._first = True
        self._waiting: asyncio.TimerHandle | None = None
        self._read_back = ""
        self._next_set = False
        self._outcome = ""

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self._transport = cast(asyncio.Transport, transport)
        self._send(self._env)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        while not self._outcome:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            self._command(line.decode("utf-8", "replace").rstrip("\r"), now)
        if len(self._buffer) > LINE_LIMIT:
            self._fail("line-too-long")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
        if not self._outcome:
            if exc is not None:
                self._outcome = f"connection-{type(exc).__name__}"
            elif self._next_set and self._read_back == self._digits:
                self._outcome = "ok"
            else:
                self._outcome = "ended-early"
        if not self.done.done():
            self.done.set_result(self._outcome)

    # -- the call --------------------------------------------------------------------------

    def abort(self, outcome: str) -> None:
        self._fail(outcome)

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)
        self._sent_at = time.perf_counter()

    def _fail(self, outcome: str) -> None:
        if not self._outcome:
            self._outcome = outcome
        if self._transport is not None:
            self._transport.abort()

    def _command(self, line: str, now: float) -> None:
        if self._waiting is not None:
            # Asterisk runs one command at a time; a second one mid-GET DATA is a server bug.
            self._fail("command-during-get-data")
            return
        if self._stats.recording:
            (self._stats.first_command if self._first else self._stats.steps).append(
                now - self._sent_at
            )
        self._first = False
        upper = line.upper()
        if upper.startswith("FAILURE"):
            # Asterisk ends the AGI here (AGISTATUS=FAILURE): the server refused the call.
            self._fail("refused")
            return
        if upper.startswith("STREAM FILE "):
            sound = line.split()[2]
            if "/digit-" in sound:
                self._read_back += sound.strip('"').rsplit("-", 1)[-1]
            self._send(REPLY_STREAMED)
        elif upper.startswith("GET DATA "):
            if self._key_wait > 0:
                loop = asyncio.get_running_loop()
                self._waiting = loop.call_later(self._key_wait, self._keys_entered)
            else:
                self._keys_entered()
        elif upper.startswith("SET VARIABLE "):
            # pyst2 quotes the name, panoramisk apps may not: compare it unquoted.
            name = line.split(maxsplit=3)[2].strip('"') if line.count(" ") >= 2 else ""
            self._next_set = self._next_set or name == "IVR_NEXT"
            self._send(REPLY_ONE)
        elif upper.startswith("VERBOSE "):
            self._send(REPLY_ONE)
        elif upper in ("ANSWER", "NOOP") or upper.startswith("NOOP "):
            self._send(REPLY_OK)
        elif upper == "CHANNEL STATUS":
            self._send(REPLY_CHANNEL_UP)
        elif upper == "HANGUP":
            self._send(REPLY_ONE)
            self._outcome = "server-hangup"
            assert self._transport is not None
            self._transport.close()
        else:
            self._send(REPLY_INVALID)
            self._fail("unexpected-command")

    def _keys_entered(self) -> None:
        self._waiting = None
        # Keys ended by '#' read back as they are; ended by silence they carry "(timeout)".
        tail = "" if self._by_hash else " (timeout)"
        self._send(f"200 result={self._digits}{tail}\n".encode())


async def place_call(port: int, stats: Stats, keys: int, key_wait: float) -> None:
    """One call from connect to the server's close; the outcome goes into `stats`."""
    loop = asyncio.get_running_loop()
    digits = "".join(random.choice("0123456789") for _ in range(keys))
    call = EmulatedCall(stats, environment(port), digits, random.random() < 0.5, key_wait)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await loop.create_connection(lambda: call, HOST, port)
    except TimeoutError:
        stats.error("connect-timeout")
        return
    except OSError as exc:
        stats.error(f"connect-{type(exc).__name__}")
        return
    stats.in_progress += 1
    stats.peak_in_progress = max(stats.peak_in_progress, stats.in_progress)
    try:
        async with asyncio.timeout(key_wait + CALL_SLACK_SECONDS):
            outcome = await asyncio.shield(call.done)
    except TimeoutError:
        call.abort("call-timeout")
        outcome = "call-timeout"
    except asyncio.CancelledError:
        call.abort("cut-short")  # the run's time limit
        raise
    finally:
        stats.in_progress -= 1
    if outcome == "ok":
        stats.completed += 1
    else:
        stats.error(outcome)
