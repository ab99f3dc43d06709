"""What the FastAGI server tells the metrics and the wallboard about each call.

`MeasuredChannel` times the server's own share of every step (from Asterisk's reply to
the next command) and remembers what the call left for the dialplan (IVR_NEXT and the
hand-off reason). `counted` wraps a call's flow: calls in progress, then how the call
ended, from the exception that ended it and what it left for the dialplan, never from
inside the flows. Each ended call is one row in `call_outcomes`, inserted once after the
call has ended, so neither the caller nor the dialplan waits for the database; if it is
down, the row is lost (and counted) while the metrics still count the call. One writer per
process inserts the waiting rows in batches, one transaction each, so calls ending together
never compete with callers' own steps for pooled connections.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from collections.abc import Callable
from typing import Any, Final

import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from backend import metrics
from backend.db.tables import call_outcomes
from backend.metrics import CallTally
from ivr.agi.channel import AgiChannel, QuietAGI
from ivr.agi.env import CallInfo
from ivr.agi.errors import CallEnding, CallerHungUp
from ivr.agi.reply import Reply
from ivr.caller import Caller
from ivr.contract import NEXT_AGENT, NEXT_UNAVAILABLE, VAR_AGENT_REASON, VAR_NEXT

log = structlog.get_logger("ivr.callstats")

# Hand-off reasons kept in the table (ivr.contract); any other value is stored as "other".
REASONS: Final = (
    "caller-asked",
    "initial-pin-loss-report",
    "retries-exhausted",
    "card-locked",
    "service-unavailable",
)
# Rows waiting for the writer; past the limit (the database down for long under load)
# further rows are dropped and counted.
QUEUE_LIMIT: Final = 20_000
BATCH: Final = 500
# After a failed write the writer waits this long before trying the next batch: with the
# database down, every ended call would otherwise be one more connection attempt (a storm
# against a database that is struggling, and most of the server's CPU under load).
RETRY_SECONDS: Final = 1.0
_queue: collections.deque[dict[str, Any]] = collections.deque()
_writer: asyncio.Task[None] | None = None
_INSERT: Final = insert(call_outcomes)


# One histogram child per command, looked up once.
_STEP: Final = {name: metrics.AGI_STEP_SECONDS.child(name) for name in metrics.AGI_COMMANDS}
_STEP_OTHER: Final = metrics.AGI_STEP_SECONDS.child("other")
# The same children by verb as sent ("STREAM FILE"), so a step costs one lookup.
_STEP_BY_VERB: Final = {name.upper().replace("_", " "): child for name, child in _STEP.items()}


class MeasuredChannel(AgiChannel):
    """An `AgiChannel` that times the server's part of each step and remembers the
    variables the call leaves for the dialplan."""

    def __init__(self, agi: QuietAGI) -> None:
        super().__init__(agi)
        self.next_step = ""
        self.agent_reason = ""
        self._replied = time.monotonic()

    def _timed(self, command: str, send: Callable[[], Any]) -> Any:
        _STEP.get(command, _STEP_OTHER).observe(time.monotonic() - self._replied)
        try:
            return send()
        finally:
            self._replied = time.monotonic()

    def command(self, verb: str, *args: str | int) -> Reply:
        # `_timed` inlined: this runs for every command of every call.
        step = _STEP_BY_VERB.get(verb) or _STEP.get(verb.lower().replace(" ", "_"), _STEP_OTHER)
        step.observe(time.monotonic() - self._replied)
        try:
            return super().command(verb, *args)
        finally:
            self._replied = time.monotonic()

    def set_variable(self, name: str, value: str) -> None:
        _STEP["set_variable"].observe(time.monotonic() - self._replied)
        try:
            super().set_variable(name, value)
        finally:
            self._replied = time.monotonic()
        if name == VAR_NEXT:
            self.next_step = value
        elif name == VAR_AGENT_REASON:
            self.agent_reason = value

    def verbose(self, message: str, level: int = 1) -> None:
        self._timed("verbose", lambda: super(MeasuredChannel, self).verbose(message, level))

    def hangup(self) -> None:
        self._timed("hangup", super().hangup)


def counted(
    flow: Callable[[Caller], object], info: CallInfo, channel: MeasuredChannel
) -> Callable[[Caller], None]:
    """`flow`, counted: call it in the call's task (before its greenlet starts), so that
    the backend steps of the call can tell it a self-service was done."""
    tally = CallTally()
    metrics.CURRENT_CALL.set(tally)
    script = metrics.bounded(info.script, metrics.SCRIPTS)

    def run(caller: Caller) -> None:
        started = time.monotonic()
        outcome = "failed"
        metrics.CALLS_IN_PROGRESS.inc()
        try:
            flow(caller)
            outcome = _ended(channel, tally, hung_up=False)
        except CallerHungUp:
            outcome = _ended(channel, tally, hung_up=True)
            raise
        except CallEnding:
            outcome = "shutdown"
            raise
        finally:
            metrics.CALLS_IN_PROGRESS.dec()
            seconds = time.monotonic() - started
            _child(metrics.CALLS, script, outcome).inc()
            _child(metrics.CALL_SECONDS, outcome).observe(seconds)
            reason = channel.agent_reason if outcome == "agent" else ""
            _write_later(info.call_id, script, outcome, reason, seconds)

    return run


# Metric children by their labels, looked up once: `labels()` takes a lock each time. The
# label values are bounded (`metrics.bounded`), so this stays small.
_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _ended(channel: MeasuredChannel, tally: CallTally, *, hung_up: bool) -> str:
    if channel.next_step == NEXT_AGENT:
        return "agent"
    if channel.next_step == NEXT_UNAVAILABLE:
        return "failed"
    if tally.served:
        return "served"
    return "hung_up" if hung_up else "ended"


def _write_later(call_id: str, script: str, outcome: str, reason: str, seconds: float) -> None:
    row = {
        "call_id": call_id[:64],
        "script": script,
        "outcome": outcome,
        "agent_reason": metrics.bounded(reason, REASONS) if reason else None,
        "seconds": round(seconds, 3),
    }
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # a flow run outside a server: nothing to record to
    if len(_queue) >= QUEUE_LIMIT:
        metrics.CALL_RECORDS_DROPPED.inc()
        return
    _queue.append(row)
    global _writer
    if _writer is None or _writer.done():
        # A context of its own: the writer's log lines belong to no one call.
        _writer = loop.create_task(_write_all(), context=contextvars.Context())


async def _write_all() -> None:
    """Write the queued rows, a batch per transaction, until none are left: one pooled
    connection at most, whatever the number of calls ending at once.

    This bookkeeping never changes what callers get: it does not go through the gate of
    the callers' steps (it neither probes for them nor shuts it), it skips its batch while
    the gate is shut, and a failure is one info line (the drop is counted; the callers'
    own steps report the database) followed by a pause of RETRY_SECONDS."""
    from backend.db.engine import get_engine, get_gate
    from backend.settings import get_settings

    while _queue:
        batch = [_queue.popleft() for _ in range(min(BATCH, len(_queue)))]
        why = "database unreachable"
        if not get_gate().shut:
            try:
                async with asyncio.timeout(get_settings().db_step_seconds):
                    async with get_engine().begin() as conn:
                        # One prepared statement, executed for the whole batch.
                        await conn.execute(_INSERT, batch)
                continue
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                why = type(exc).__name__
        metrics.CALL_RECORDS_DROPPED.inc(len(batch))
        log.info("call_outcomes_not_recorded", calls=len(batch), reason=why)
        # Rows of calls ending meanwhile wait in the queue (bounded by QUEUE_LIMIT).
        await asyncio.sleep(RETRY_SECONDS)


async def flush(seconds: float = 5.0) -> None:
    """Wait (a bounded time) for the call rows still being written."""
    if _writer is not None and not _writer.done():
        await asyncio.wait({_writer}, timeout=seconds)
