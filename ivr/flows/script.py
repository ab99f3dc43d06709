"""Wraps a flow as an AGI script, and a service as a step of a call: one way to end each.

A service that the caller leaves with `*`, or whose tries run out out of hours, returns
to the menu with a word; tries running out in office hours lead to an agent. A finished
script says goodbye; a hang-up leaves one audit record of the step where it happened (if
the database can take it: a hang-up during an outage ends the call as cleanly).
"""

from __future__ import annotations

from collections.abc import Callable

from backend.services.common import audit_alone, best_effort
from ivr.agi.bridge import await_
from ivr.caller import AgentRequested, Caller, CallerHungUp, GoBack, NoValidInput
from ivr.contract import REASON_CALLER_ASKED, REASON_RETRIES_EXHAUSTED
from ivr.flows import agent
from ivr.flows.common import Call, CallOver, Served, log
from prompts.catalogue import Prompt

Body = Callable[[Call], None]
Service = Callable[[Call], Served]
Script = Callable[[Caller], None]


def run_service(call: Call, service: Service) -> Served:
    """The service until it ends; `*` in an entry leaves it."""
    try:
        return service(call)
    except GoBack:
        return Served.NOT_DONE
    except NoValidInput:
        call.caller.play(Prompt.TOO_MANY_TRIES)
        agent.hand_over(call, REASON_RETRIES_EXHAUSTED)
        return Served.NOT_DONE


def as_script(body: Body) -> Script:
    def run(caller: Caller) -> None:
        call = Call(caller)
        try:
            try:
                body(call)
            except NoValidInput:
                caller.play(Prompt.TOO_MANY_TRIES)
                agent.hand_over(call, REASON_RETRIES_EXHAUSTED)
            except AgentRequested:
                agent.hand_over(call, REASON_CALLER_ASKED)
            call.goodbye()
        except CallOver:
            return
        except CallerHungUp:
            log.info("caller_hung_up", step=call.step)
            # Best effort and bounded: a hang-up during an outage ends as cleanly as any.
            record = audit_alone(call.actor, "call", "hangup", call.card_masked, step=call.step)
            await_(best_effort(record, "hangup"))
            raise

    run.__name__ = body.__name__
    run.__doc__ = body.__doc__
    return run


def service_script(service: Service) -> Script:
    """One service as a whole call, for a dialplan that routes to it directly."""

    def body(call: Call) -> None:
        run_service(call, service)

    body.__name__ = service.__name__
    body.__doc__ = service.__doc__
    return as_script(body)
