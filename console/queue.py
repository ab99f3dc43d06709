"""The agent queue as Asterisk sees it now: callers waiting and the longest wait.

Read with `asterisk -rx "queue show ivr12333-agents"` through the local Asterisk helpers
(`asterisk_local`), which `make run` starts on this machine; the console has to run where
it may use that Asterisk's control socket. Elsewhere (no local Asterisk, or
`IVR_CONSOLE_ASTERISK_INSTANCE` empty) the wallboard says the figures are not available.
A reading is kept a few seconds, so open wallboards do not each start an `asterisk`.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

QUEUE = "ivr12333-agents"
KEEP_SECONDS = 5.0
CLI_SECONDS = 5.0

_HEADER = re.compile(rf"^{re.escape(QUEUE)} has (\d+) calls? ", re.MULTILINE)
_WAIT = re.compile(r"\(wait: (\d+):(\d{2})(?::(\d{2}))?")


@dataclass(frozen=True)
class QueueFigures:
    waiting: int
    longest_wait_seconds: int


def parse_queue_show(output: str) -> QueueFigures | None:
    """Figures from `queue show <queue>` output; None if the queue is not in it."""
    header = _HEADER.search(output)
    if header is None:
        return None
    longest = 0
    for found in _WAIT.finditer(output[header.end() :]):
        first, second, third = found.groups()
        if third is None:  # m:ss
            seconds = int(first) * 60 + int(second)
        else:  # h:mm:ss
            seconds = int(first) * 3600 + int(second) * 60 + int(third)
        longest = max(longest, seconds)
    return QueueFigures(int(header.group(1)), longest)


_kept: tuple[float, QueueFigures | None] = (0.0, None)


def _read(instance: str) -> QueueFigures | None:
    from asterisk_local import instance as local

    running = local.status(instance)
    if running is None:
        return None
    try:
        return parse_queue_show(running.cli(f"queue show {QUEUE}", timeout=CLI_SECONDS))
    except (local.AsteriskError, OSError, subprocess.SubprocessError) as exc:
        log.warning("queue_figures_unavailable", reason=type(exc).__name__)
        return None


async def queue_figures(instance: str) -> QueueFigures | None:
    """The queue now (kept up to KEEP_SECONDS), or None when Asterisk cannot be asked."""
    global _kept
    if not instance:
        return None
    read_at, figures = _kept
    if time.monotonic() - read_at < KEEP_SECONDS:
        return figures
    try:
        figures = await asyncio.wait_for(asyncio.to_thread(_read, instance), CLI_SECONDS + 1)
    except TimeoutError:
        figures = None
    _kept = (time.monotonic(), figures)
    return figures
