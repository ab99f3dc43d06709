"""Run synchronous flow code in a greenlet that can await coroutines on the event loop.

A flow (and pyst2 under it) is plain blocking-style code. It runs in a `FlowGreenlet`
driven by an asyncio task. It waits in one of two ways:

- for a coroutine (a backend call): `await_` hands it to the task, which awaits it and
  switches back with the result;
- for Asterisk's next reply line, the wait of every AGI command: the flow parks
  (`park_for_line`) and the connection's protocol switches straight back into it from its
  `data_received` (`resume`). No future, no task wake-up and no coroutine step per reply:
  that was most of the server's own work per command. The task meanwhile waits on one
  future that is only set when the flow next needs the task (a coroutine to await, or its
  end).

One loop thread, no threads per call.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast

import greenlet  # type: ignore[import-untyped]  # greenlet ships no type information

from ivr.agi.errors import CallEnding

T = TypeVar("T")

# What a flow passes to whoever switched into it when it parks for a reply line: nothing
# to await; the protocol resumes it when the line is there.
PARKED: Final = object()


class _Ended:
    """What a flow greenlet returns when its function has returned or raised: a greenlet
    resumed from a protocol callback must not raise into the event loop."""

    __slots__ = ("error", "value")

    def __init__(self, value: object, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class FlowGreenlet(greenlet.greenlet):  # type: ignore[misc]  # an untyped base class
    """A greenlet that runs calls' flows, one after another: a finished flow's greenlet
    waits in `_idle` for the next call (a new greenlet maps and unmaps its own frame stack,
    system calls and page faults on every call). Its driving task waits on `handoff`
    while the flow is parked for a line."""

    def __init__(self) -> None:
        super().__init__(self._serve)
        self.handoff: asyncio.Future[object] | None = None
        self.in_call = False  # running a call's flow (not idle, not finished)

    def _serve(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        while True:
            try:
                ended = _Ended(fn(*args), None)
            except greenlet.GreenletExit:
                return  # an idle greenlet collected at exit
            except BaseException as exc:  # every outcome goes back to the driving task
                ended = _Ended(None, exc)
            fn = args = None  # type: ignore[assignment]  # nothing of the call kept
            fn, args = self.parent.switch(ended)


# Idle flow greenlets; past the limit a finished one is ended (a burst of calls ended).
_idle: list[FlowGreenlet] = []
IDLE_LIMIT: Final = 512


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for `awaitable` on the event loop from inside a flow; returns its result."""
    current = greenlet.getcurrent()
    if not isinstance(current, FlowGreenlet):
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()  # no "never awaited" warning on top of the real error
        raise RuntimeError("await_() called outside a call's flow greenlet")
    result: T = current.parent.switch(awaitable)
    return result


def park_for_line() -> FlowGreenlet:
    """The current flow greenlet, checked: it is about to park (see `park`)."""
    current = greenlet.getcurrent()
    if not isinstance(current, FlowGreenlet):
        raise RuntimeError("waiting for a reply outside a call's flow greenlet")
    return current


def park(flow: FlowGreenlet) -> None:
    """Suspend `flow` (the current greenlet) until a protocol callback `resume`s it."""
    flow.parent.switch(PARKED)


def resume(flow: FlowGreenlet, error: BaseException | None = None) -> None:
    """From a protocol callback: switch into a parked flow (or throw `error` into it).
    What it wants next, if not another line, goes to its driving task."""
    value = flow.throw(error) if error is not None else flow.switch()
    if value is not PARKED:
        handoff = flow.handoff
        if handoff is not None and not handoff.done():
            handoff.set_result(value)
        else:
            _discard(value)  # the task is gone (cancelled and dropped): nothing awaits it


async def run_in_greenlet(
    fn: Callable[..., T],
    *args: Any,
    end_on_cancel: Callable[[], bool] = lambda: False,
) -> T:
    """Run `fn(*args)` in a flow greenlet (an idle one, or a new one), awaiting what it
    passes to `await_`.

    The greenlet gets a copy of the current context, so structlog's bound call id follows.
    If this task is cancelled while `end_on_cancel()` is true, `CallEnding` is thrown into
    the flow instead, so it can end the call politely; otherwise the cancellation is thrown
    in and unwinds the flow.
    """
    flow = _idle.pop() if _idle else FlowGreenlet()
    flow.gr_context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    flow.in_call = True
    value: Any = flow.switch(fn, args)
    while not isinstance(value, _Ended):
        try:
            if value is PARKED:
                flow.handoff = handoff = loop.create_future()
                try:
                    value = await handoff
                finally:
                    flow.handoff = None
                continue
            result = await value
        except BaseException as exc:  # every outcome, cancellation too, goes into the flow
            if value is PARKED and handoff.done() and not handoff.cancelled():
                # Cancelled just after the flow handed something over: take it, then stop.
                value = handoff.result()
                if isinstance(value, _Ended):
                    break
                _discard(value)
            value = _throw_into(flow, exc, end_on_cancel)
        else:
            value = flow.switch(result)
    flow.in_call = False
    if not flow.dead:
        if len(_idle) < IDLE_LIMIT:
            flow.gr_context = None  # the call's bound log context goes with the call
            _idle.append(flow)
        else:
            # Ended here: a greenlet suspended in a cycle with its own frame is never
            # collected, so one dropped alive would be kept for good.
            flow.throw(greenlet.GreenletExit)
    if value.error is not None:
        error = value.error
        value.error = None  # no cycle through this frame
        raise error
    return cast(T, value.value)


def _discard(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # a coroutine never started: no "never awaited" warning


def _throw_into(flow: FlowGreenlet, exc: BaseException, end_on_cancel: Callable[[], bool]) -> Any:
    if isinstance(exc, asyncio.CancelledError) and end_on_cancel():
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return flow.throw(CallEnding("server shutting down"))
    return flow.throw(exc)
