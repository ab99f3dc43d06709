"""The table of AGI scripts: `agi://host:port/<script>` -> the flow that runs the call.

Flows register themselves with `@register("name")` when `ivr.flows` is imported
(`load_flows`). The one built-in script, `echo`, is a demo for smoke tests: it reads back
what the caller keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ivr.caller import Caller
from ivr.contract import NEXT_HANGUP, VAR_NEXT

FlowFn = Callable[[Caller], None]

SCRIPTS: dict[str, FlowFn] = {}


def register(name: str) -> Callable[[FlowFn], FlowFn]:
    """Decorator: serve `name` with the decorated flow. A name can be taken only once."""

    def add(flow: FlowFn) -> FlowFn:
        if SCRIPTS.get(name, flow) is not flow:
            raise ValueError(f"AGI script {name!r} is already registered")
        SCRIPTS[name] = flow
        return flow

    return add


def load_flows() -> None:
    """Import `ivr.flows` (which registers the real scripts), if that package exists."""
    try:
        importlib.import_module("ivr.flows")
    except ModuleNotFoundError as exc:
        if exc.name != "ivr.flows":
            raise


@register("echo")
def echo(caller: Caller) -> None:
    """Demo: welcome, take a card number, read it back, goodbye."""
    caller.play("welcome")
    number = caller.ask("enter-card-number", min_len=1, max_len=20)
    caller.play("loss-card-readback")
    caller.say_digits(number)
    caller.play("goodbye")
    caller.set_variable(VAR_NEXT, NEXT_HANGUP)
