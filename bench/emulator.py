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
# The environment as a template filled per call: `agi_environment` is built once.
_ENV_TEMPLATE = (
    "".join(
        f"{k}: {'PJSIP/sipp-{channel}' if k == 'agi_channel' else v}\n"
        for k, v in agi_environment(SCRIPT, HOST, "{port}", "{caller}", "{unique_id}")  # type: ignore[arg-type]
    )
    + "\n"
)


def environment(port: int) -> bytes:
    unique_id = f"1790000000.{next(_unique_ids)}"
    caller = f"138{random.randrange(10**8):08d}"
    return _ENV_TEMPLATE.format(
        caller=caller,
        unique_id=unique_id,
        channel=unique_id.replace(".", "")[-8:],
        port=port,
    ).encode()


# Each command by its first word, as bytes: no decoding or upper-casing per line. Servers
# send verbs in capitals (pyst2 and panoramisk both do).
_STREAM, _GET, _SET, _VERBOSE, _ANSWER, _NOOP, _CHANNEL, _HANGUP, _FAILURE = range(9)
_VERBS = {
    b"STREAM": _STREAM,
    b"GET": _GET,
    b"SET": _SET,
    b"VERBOSE": _VERBOSE,
    b"ANSWER": _ANSWER,
    b"NOOP": _NOOP,
    b"CHANNEL": _CHANNEL,
    b"HANGUP": _HANGUP,
}
_DIGIT_SOUND = b"/digit-"


class EmulatedCall(asyncio.Protocol):
    """The Asterisk side of one FastAGI call running `echo`.

    A Protocol rather than streams: thousands of calls on one loop, and the client's own
    overhead lands in every step it measures. Replies are canned bytes; a command is told
    by its first word only, and only a read-back digit's sound name is looked into.
    """

    def __init__(
        self, stats: Stats, env: bytes, digits: str, by_hash: bool, key_wait: float
    ) -> None:
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._stats = stats
        self._env = env
        self._digits = digits.encode()
        # Keys ended by '#' read back as they are; ended by silence they carry "(timeout)".
        tail = b"" if by_hash else b" (timeout)"
        self._keys_reply = b"200 result=" + self._digits + tail + b"\n"
        self._key_wait = key_wait
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._sent_at = 0.0
        self._first = True
        self._waiting: asyncio.TimerHandle | None = None
        self._read_back = b""
        self._next_set = False
        self._outcome = ""

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self._transport = cast(asyncio.Transport, transport)
        self._send(self._env)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        start = 0
        while not self._outcome:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._command(data[start:end], now)
            start = end + 1
        rest = data[start:]
        if len(rest) > LINE_LIMIT:
            self._fail("line-too-long")
        elif rest and not self._outcome:
            self._buffer = rest

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

    def _command(self, line: bytes, now: float) -> None:
        if self._waiting is not None:
            # Asterisk runs one command at a time; a second one mid-GET DATA is a server bug.
            self._fail("command-during-get-data")
            return
        if self._stats.recording:
            (self._stats.first_command if self._first else self._stats.steps).append(
                now - self._sent_at
            )
        self._first = False
        if line.endswith(b"\r"):
            line = line[:-1]
        verb = _VERBS.get(line.split(b" ", 1)[0], -1)
        if verb == _STREAM and line.startswith(b"STREAM FILE "):
            digit_at = line.find(_DIGIT_SOUND)
            if digit_at >= 0:
                # `STREAM FILE ivr12333/digit-7 ""`: the sound's last character is the digit.
                sound = line[digit_at:].split(b" ", 1)[0].strip(b'"')
                self._read_back += sound[-1:]
            self._send(REPLY_STREAMED)
        elif verb == _GET and line.startswith(b"GET DATA "):
            if self._key_wait > 0:
                loop = asyncio.get_running_loop()
                self._waiting = loop.call_later(self._key_wait, self._keys_entered)
            else:
                self._keys_entered()
        elif verb == _SET and line.startswith(b"SET VARIABLE "):
            # pyst2 quotes the name, panoramisk apps may not: compare it unquoted.
            parts = line.split(b" ", 3)
            name = parts[2].strip(b'"') if len(parts) > 2 else b""
            self._next_set = self._next_set or name == b"IVR_NEXT"
            self._send(REPLY_ONE)
        elif verb == _VERBOSE:
            self._send(REPLY_ONE)
        elif (verb == _ANSWER and line == b"ANSWER") or verb == _NOOP:
            self._send(REPLY_OK)
        elif line == b"CHANNEL STATUS":
            self._send(REPLY_CHANNEL_UP)
        elif line == b"HANGUP":
            self._send(REPLY_ONE)
            self._outcome = "server-hangup"
            assert self._transport is not None
            self._transport.close()
        elif line.upper().startswith(b"FAILURE"):
            # Asterisk ends the AGI here (AGISTATUS=FAILURE): the server refused the call.
            self._fail("refused")
        else:
            self._send(REPLY_INVALID)
            self._fail("unexpected-command")

    def _keys_entered(self) -> None:
        self._waiting = None
        self._send(self._keys_reply)


async def place_call(port: int, stats: Stats, keys: int, key_wait: float) -> None:
    """One call from connect to the server's close; the outcome goes into `stats`."""
    loop = asyncio.get_running_loop()
    digits = f"{random.randrange(10**keys):0{keys}d}"
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
    # One timer for the whole call (no timeout context, no shield): it aborts the call, and
    # the abort ends the call's future like any other end.
    stuck = loop.call_later(key_wait + CALL_SLACK_SECONDS, call.abort, "call-timeout")
    try:
        outcome = await call.done
    except asyncio.CancelledError:
        call.abort("cut-short")  # the run's time limit
        raise
    finally:
        stuck.cancel()
        stats.in_progress -= 1
    if outcome == "ok":
        stats.completed += 1
    else:
        stats.error(outcome)
