"""The FastAGI server: one asyncio loop for every socket, one greenlet per call's flow.

Each connection: read the `agi_*` environment under a time limit, look the script up in the
table, run its flow in a greenlet over pyst2 (`ivr.agi`). A hang-up ends the flow with one
log line. A flow that cannot go on hands the call back to the dialplan with
IVR_NEXT=unavailable and says nothing itself: the dialplan apologises once and takes its
fallback (ivr/contract.py). That is the one exit for the card service being unavailable
(`ServiceUnavailable`, expected during a database outage: one warning line, not a server
error) and for an unexpected error (logged with its traceback and recorded in `errors`,
which tests assert stays empty; words only, a bounded number). `drain()` stops taking
calls, lets calls in progress finish for a while, then says goodbye to the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from backend import metrics
from backend.errors import ServiceUnavailable
from backend.health import database_problem, start_listener
from backend.logsetup import describe_exception, exception_type, forget_frames
from ivr import callstats
from ivr.agi.bridge import run_in_greenlet
from ivr.agi.channel import AgiChannel, QuietAGI
from ivr.agi.env import call_info, clean_text, mask_phone, read_env
from ivr.agi.errors import AgiProtocolError, CallEnding, CallerHungUp
from ivr.agi.streams import AgiStream, LineReader, LineWriter
from ivr.caller import Caller, Timeouts
from ivr.contract import (
    NEXT_UNAVAILABLE,
    REASON_SERVICE_UNAVAILABLE,
    VAR_AGENT_REASON,
    VAR_CALL_ID,
    VAR_NEXT,
)
from prompts.catalogue import Prompt, sound_name

log = structlog.get_logger("ivr.server")

# What a flow returns is ignored (the table's scripts return None; test flows return results).
FlowFn = Callable[[Caller], object]

# A lost listen queue drops calls under a burst; 100 lost calls at 5,000 held, 4,096 did not.
LISTEN_BACKLOG = 4096
# Asterisk sends its environment at once; 5 s is generous even on a loaded machine.
HEADER_TIMEOUT = 5.0
# The longest a reply can take: a GET DATA of 19 keys at 6 s each plus its prompt.
REPLY_TIMEOUT = 300.0
# Saying goodbye at shutdown or after an error must not wait on a stuck peer.
FAREWELL_REPLY_TIMEOUT = 5.0
# Unexpected errors kept for inspection (tests, a debugger); the log has every one.
ERROR_RECORD_LIMIT = 100
# `ivr12333 agi check` (the containers' health check) asks for this script: the answer
# proves the event loop reads headers and writes replies, which a bare TCP connect (the
# kernel accepts it even while the process is frozen) does not.
HEALTH_SCRIPT = "ivr12333-health"
HEALTH_REPLY = b'VERBOSE "ivr12333 healthy" 1\n'


@dataclass(frozen=True, slots=True)
class ServerError:
    """One unexpected error, as kept in memory: words only.

    The exception itself is not kept: its traceback holds every frame it passed through,
    and their locals hold the call's PINs and ID numbers.
    """

    kind: str  # the exception's type, e.g. "KeyError" or "sqlalchemy.exc.DataError"
    call_id: str
    step: str  # the call's last AGI step, e.g. "GET DATA ivr12333/enter-pin"
    message: str  # `backend.logsetup.describe_exception`: no values


def _record(exc: BaseException, step: str) -> ServerError:
    call_id = structlog.contextvars.get_contextvars().get("call_id", "")
    return ServerError(exception_type(exc), str(call_id), step, describe_exception(exc))


def tune_gc() -> None:
    """Call once start-up is done.

    With thousands of calls held, Python's cyclic collector (not CPU) made the slow tail of
    step times (p99 42-152 ms against 9.4 ms with this). Freezing moves everything built at
    start-up (modules, flows, settings) out of the collector's sight; a high gen-0 threshold
    makes collections rare, since per-call objects mostly die by reference counting.
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(50_000, gen1, gen2)


class AgiServer:
    """Serves FastAGI connections with the flows in `scripts`."""

    def __init__(
        self,
        scripts: Mapping[str, FlowFn],
        *,
        max_calls: int = 8000,
        drain_seconds: float = 20.0,
        header_timeout: float = HEADER_TIMEOUT,
        reply_timeout: float = REPLY_TIMEOUT,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.scripts = scripts
        self.max_calls = max_calls
        self.drain_seconds = drain_seconds
        self.header_timeout = header_timeout
        self.reply_timeout = reply_timeout
        self.timeouts = timeouts or Timeouts()
        # Unexpected errors from flows or from the server itself, the newest last; tests
        # assert it stays empty. Bounded, so a fault that fails every call cannot grow it.
        self.errors: collections.deque[ServerError] = collections.deque(maxlen=ERROR_RECORD_LIMIT)
        self.errors_seen = 0
        self.calls_served = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self._server: asyncio.Server | None = None
        self._accepting = False
        self._draining = False

    @property
    def active_calls(self) -> int:
        return len(self._tasks)

    @property
    def accepting(self) -> bool:
        """Whether new calls are taken (listening, and not draining)."""
        return self._accepting

    async def start(
        self, host: str = "127.0.0.1", port: int = 4573, *, reuse_port: bool = False
    ) -> int:
        """Listen on host:port (port 0: any free one); returns the port bound. With
        `reuse_port`, other processes' servers share the port (`ivr.workers`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=LISTEN_BACKLOG, reuse_port=reuse_port
        )
        self._accepting = True
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def drain(self, goodbye_seconds: float = 10.0) -> None:
        """Stop listening; give calls `drain_seconds` to finish, then end the rest politely."""
        self._accepting = False
        if self._server is not None:
            self._server.close()
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.drain_seconds)
        if pending:
            log.info("agi.drain.ending_calls", calls=len(pending))
            self._draining = True
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=goodbye_seconds)
        if pending:
            # Still stuck after the goodbye: drop them.
            self._draining = False
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)

    def _accept(self, stream: AgiStream) -> None:
        """A new connection (called by its protocol): refuse it, or start its call."""
        if not self._accepting or len(self._tasks) >= self.max_calls:
            self._refuse(stream)
            return
        task = asyncio.get_running_loop().create_task(self._handle(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, stream: AgiStream) -> None:
        try:
            await self._serve_call(stream)
        except asyncio.CancelledError:
            pass  # dropped at the end of a drain
        except Exception as exc:
            log.exception("call.server_error")
            self._keep(exc, "")
        finally:
            stream.close()

    def _keep(self, exc: BaseException, step: str) -> None:
        self.errors_seen += 1
        self.errors.append(_record(exc, step))
        forget_frames(exc)

    def _refuse(self, stream: AgiStream) -> None:
        # A line starting "FAILURE" before any command ends Asterisk's AGI with
        # AGISTATUS=FAILURE at once, and the dialplan's [ivr-agi] then tries the next
        # server: a draining or full server hands its new callers on instead of apologising.
        reason = "draining" if not self._accepting else "capacity"
        metrics.CALLS_REFUSED.labels(reason).inc()
        log.warning("call.refused", reason=reason)
        stream.write(b"FAILURE\n")
        stream.close()  # the transport sends what it holds, then closes

    async def _serve_call(self, stream: AgiStream) -> None:
        try:
            env = await read_env(stream, self.header_timeout)
        except EOFError:
            log.debug("call.probe")  # health checks connect and close every few seconds
            return
        except (TimeoutError, ValueError, ConnectionError) as exc:
            log.warning("call.bad_header", reason=type(exc).__name__)
            return
        info = call_info(env)
        if info.script == HEALTH_SCRIPT:
            log.debug("call.health_check")
            stream.write(HEALTH_REPLY)  # the connection closes after it (_handle's finally)
            return
        structlog.contextvars.bind_contextvars(
            call_id=info.call_id, script=info.script, caller=mask_phone(info.caller_number)
        )
        agi = QuietAGI(env, LineReader(stream, self.reply_timeout), LineWriter(stream))
        channel = callstats.MeasuredChannel(agi)
        flow = self.scripts.get(info.script)
        self.calls_served += 1
        if flow is None:
            requested = clean_text(env.get("agi_network_script", ""), 64)
            log.warning("call.unknown_script", requested=requested)
            await run_in_greenlet(_say_unknown_script, channel)
            return
        caller = Caller(channel, info, timeouts=self.timeouts)
        flow = callstats.counted(flow, info, channel)
        await run_in_greenlet(
            self._run_flow, flow, caller, channel, end_on_cancel=lambda: self._draining
        )

    def _run_flow(self, flow: FlowFn, caller: Caller, channel: AgiChannel) -> None:
        """Runs in the call's greenlet: the flow, then one log line on how it ended, with
        the steps the caller went through (`Caller.steps`)."""
        started = time.monotonic()

        def seconds() -> float:
            return round(time.monotonic() - started, 3)

        try:
            flow(caller)
        except CallerHungUp as exc:
            log.info(
                "call.hung_up",
                at=channel.last_step,
                reason=str(exc),
                seconds=seconds(),
                steps=caller.steps,
            )
        except CallEnding:
            log.info(
                "call.ended_by_shutdown",
                at=channel.last_step,
                seconds=seconds(),
                steps=caller.steps,
            )
            _farewell(channel, Prompt.GOODBYE, hang_up=True)
        except ServiceUnavailable as exc:
            # Expected while the database is down or hung: the call id and the flow's step
            # come with the log context; no traceback, and not a server error.
            log.warning(
                "call.service_unavailable",
                at=channel.last_step,
                kind=exception_type(exc),
                reason=str(exc),
                seconds=seconds(),
                steps=caller.steps,
            )
            forget_frames(exc)
            _to_dialplan(channel, caller, REASON_SERVICE_UNAVAILABLE)
        except Exception as exc:
            log.exception(
                "call.failed", at=channel.last_step, seconds=seconds(), steps=caller.steps
            )
            self._keep(exc, channel.last_step)
            _to_dialplan(channel, caller, None)
        else:
            log.info("call.completed", at=channel.last_step, seconds=seconds(), steps=caller.steps)


class _Connection(AgiStream):
    """A FastAGI connection to the server: starts its call once connected."""

    def __init__(self, server: AgiServer) -> None:
        super().__init__()
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._server._accept(self)


def _farewell(channel: AgiChannel, prompt: Prompt, *, hang_up: bool) -> None:
    """Play one last prompt if anyone is still there; never raises."""
    if channel.hung_up:
        return
    channel.limit_reply_wait(FAREWELL_REPLY_TIMEOUT)
    try:
        channel.stream_file(sound_name(prompt))
        if hang_up:
            channel.hangup()
    except (CallerHungUp, AgiProtocolError, CallEnding):
        pass


def _to_dialplan(channel: AgiChannel, caller: Caller, reason: str | None) -> None:
    """Return the call to the dialplan's apology and fallback, saying nothing here (one
    apology, the dialplan's); never raises. Without a reason the dialplan gives its own."""
    if channel.hung_up:
        return
    channel.limit_reply_wait(FAREWELL_REPLY_TIMEOUT)
    try:
        if reason is not None:
            channel.set_variable(VAR_AGENT_REASON, reason)
        channel.set_variable(VAR_CALL_ID, caller.info.call_id)
        channel.set_variable(VAR_NEXT, NEXT_UNAVAILABLE)
    except (CallerHungUp, AgiProtocolError, CallEnding):
        pass


def _say_unknown_script(channel: AgiChannel) -> None:
    with contextlib.suppress(CallerHungUp, AgiProtocolError):
        channel.verbose("ivr12333: unknown AGI script")


async def _readiness(server: AgiServer) -> str | None:
    if not server.accepting:
        return "draining"
    return await database_problem()


async def serve(
    host: str,
    port: int,
    scripts: Mapping[str, FlowFn],
    *,
    drain_seconds: float = 20.0,
    max_calls: int = 8000,
    on_ready: Callable[[int], None] | None = None,
    metrics_address: tuple[str, int] | None = None,
    on_metrics: Callable[[int], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return. With `metrics_address`,
    /healthz, /readyz and /metrics are served there too, until the drain is over."""
    server = AgiServer(scripts, max_calls=max_calls, drain_seconds=drain_seconds)
    bound = await server.start(host, port, reuse_port=reuse_port)
    listener = None
    if metrics_address is not None:
        try:
            listener = await start_listener(*metrics_address, lambda: _readiness(server))
        except OSError as exc:
            # Calls matter more than their metrics: serve them, and say so loudly.
            log.error("agi.metrics_unavailable", address=metrics_address, reason=str(exc))
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("agi.listening", host=host, port=bound, scripts=sorted(scripts))
    if on_ready is not None:
        on_ready(bound)
    if listener is not None and on_metrics is not None:
        on_metrics(listener.sockets[0].getsockname()[1])
    try:
        await stop.wait()
        log.info("agi.draining", calls=server.active_calls, seconds=drain_seconds)
        await server.drain()
        await callstats.flush()
        log.info("agi.stopped", calls_served=server.calls_served)
    finally:
        if listener is not None:
            listener.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
