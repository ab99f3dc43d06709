"""Run synchronous flow code in a greenlet that can await coroutines on the event loop.

A flow (and pyst2 under it) is plain blocking-style code. It runs in a `FlowGreenlet`;
whenever it needs to wait (a reply from Asterisk, a backend call) `await_` hands the
coroutine to the asyncio task driving the greenlet, which awaits it and switches back with
the result. One loop thread, no threads per call.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet  # type: ignore[import-untyped]  # greenlet ships no type information

from ivr.agi.errors import CallEnding

T = TypeVar("T")


class FlowGreenlet(greenlet.greenlet):  # type: ignore[misc]  # an untyped base class
    """A greenlet whose parent awaits what it yields (marks where `await_` may be used)."""


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


async def run_in_greenlet(
    fn: Callable[..., T],
    *args: Any,
    end_on_cancel: Callable[[], bool] = lambda: False,
) -> T:
    """Run `fn(*args)` in a new greenlet, awaiting what it passes to `await_`.

    The greenlet gets a copy of the current context, so structlog's bound call id follows.
    If this task is cancelled while `end_on_cancel()` is true, `CallEnding` is thrown into
    the flow instead, so it can end the call politely; otherwise the cancellation is thrown
    in and unwinds the flow.
    """
    flow = FlowGreenlet(fn)
    flow.gr_context = contextvars.copy_context()
    value: Any = flow.switch(*args)
    while not flow.dead:
        try:
            result = await value
        except BaseException as exc:  # every outcome, cancellation too, goes into the flow
            value = _throw_into(flow, exc, end_on_cancel)
        else:
            value = flow.switch(result)
    return value  # type: ignore[no-any-return]


def _throw_into(flow: FlowGreenlet, exc: BaseException, end_on_cancel: Callable[[], bool]) -> Any:
    if isinstance(exc, asyncio.CancelledError) and end_on_cancel():
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return flow.throw(CallEnding("server shutting down"))
    return flow.throw(exc)
