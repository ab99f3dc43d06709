"""Wraps a flow as an AGI script: one way to end for every script.

A finished flow says goodbye; retries running out lead to an agent in office hours or a
polite goodbye; a hang-up leaves one audit record of the step where it happened (if the
database can take it: a hang-up during an outage ends the call as cleanly).
"""

from __future__ import annotations

from collections.abc import Callable

from backend.services.common import audit_alone, best_effort
from ivr.agi.bridge import await_
from ivr.caller import AgentRequested, Caller, CallerHungUp, NoValidInput
from ivr.contract import REASON_CALLER_ASKED, REASON_RETRIES_EXHAUSTED
from ivr.flows import agent
from ivr.flows.common import Call, CallOver, log

Body = Callable[[Call], None]


def as_script(body: Body) -> Callable[[Caller], None]:
    def run(caller: Caller) -> None:
        call = Call(caller)
        try:
            try:
                body(call)
            except NoValidInput:
                caller.play("too-many-tries")
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
