"""The `agi_*` environment Asterisk sends first, read with bounds, and the call's identity.

Everything here comes from the network and is treated as untrusted: lines are counted and
time-limited, values are cleaned of control characters and cut to a sane length.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass

from ivr.agi.streams import AgiStream

# Asterisk sends about 20 variables plus agi_arg_N; far more is not Asterisk.
MAX_ENV_LINES = 128
_SCRIPT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CALL_ID_RE = re.compile(r"[^A-Za-z0-9._-]")
_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")


@dataclass(frozen=True)
class CallInfo:
    call_id: str
    caller_number: str  # digits (maybe a leading +), or "" when withheld or not a number
    script: str  # "" when the request named no well-formed script
    channel: str


async def read_env(stream: AgiStream, seconds: float) -> dict[str, str]:
    """Read `key: value` lines up to the blank line; raise TimeoutError or ValueError, or
    EOFError when the peer closed without sending anything.

    `seconds` bounds the whole header, so a client that stalls mid-header (or trickles
    lines) cannot hold a connection open.
    """
    loop = stream.loop or asyncio.get_running_loop()
    deadline = loop.time() + seconds
    # Asterisk sends the header in one write, which usually arrives just after the accept:
    # wait for it whole, then parse it at once. Anything unusual (a header in pieces past
    # one line's limit, the peer gone, a line the parser must judge) goes line by line.
    while (whole := _whole_header(stream)) is None:
        buffered = stream.buffered
        if stream.ended or b"\n\n" in buffered or len(buffered) > stream.limit:
            break
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError
        await stream.line_ready(left)
    if whole is not None:
        return whole
    env: dict[str, str] = {}
    for _ in range(MAX_ENV_LINES):
        # Asterisk sends the header at once: lines are usually there without waiting.
        raw = stream.take_line()
        while raw is None:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            await stream.line_ready(left)
            raw = stream.take_line()
        if not raw and not env:
            # Connected and closed without a byte: a health check's TCP probe.
            raise EOFError("connection closed before any AGI environment")
        if not raw:
            raise ValueError("connection closed before the end of the AGI environment")
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            return env
        key, sep, value = line.partition(":")
        if sep and key.strip():
            env[key.strip()] = value.strip()
    raise ValueError("AGI environment too long")


def _whole_header(stream: AgiStream) -> dict[str, str] | None:
    """The environment at once when it has all arrived, as it usually has (one decode and
    one split, not a take per line); None, with nothing taken, in any case the line-by-line
    read must judge (not all there, too many lines, an over-long line, a blank line before
    the end). Same parsing as there."""
    buffer = stream.buffered
    end = buffer.find(b"\n\n")
    if end < 0:
        return None
    block = bytes(buffer[:end])
    raw_lines = block.split(b"\n")
    if len(raw_lines) >= MAX_ENV_LINES or max(map(len, raw_lines)) > stream.limit:
        return None
    env: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            key = key.strip()
            if key:
                env[key] = value.strip()
        elif not line.strip():
            return None  # a blank line ends the header early: the line-by-line read's case
    stream.discard(end + 2)
    return env


def clean_text(value: str, limit: int) -> str:
    """Drop control and format characters and cut to `limit` characters."""
    if value.isprintable():  # no character of category C (nor Z but the space): as it is
        return value[:limit]
    kept = (ch for ch in value if unicodedata.category(ch)[0] != "C")
    return "".join(kept)[:limit]


def script_name(env: dict[str, str]) -> str:
    """The script from `agi_network_script` (query string dropped), or "" if malformed."""
    raw = env.get("agi_network_script", "").split("?", 1)[0].strip("/")
    return raw if _SCRIPT_RE.match(raw) else ""


def call_info(env: dict[str, str]) -> CallInfo:
    number = env.get("agi_callerid", "").strip()
    return CallInfo(
        call_id=_CALL_ID_RE.sub("", env.get("agi_uniqueid", ""))[:64],
        caller_number=number if _NUMBER_RE.match(number) else "",
        script=script_name(env),
        channel=clean_text(env.get("agi_channel", ""), 128),
    )


def mask_phone(number: str) -> str:
    """`13800138000` -> `138****8000`; short numbers keep their last two digits."""
    if len(number) >= 11:
        return f"{number[:3]}{'*' * (len(number) - 7)}{number[-4:]}"
    if len(number) > 2:
        return f"{'*' * (len(number) - 2)}{number[-2:]}"
    return number
