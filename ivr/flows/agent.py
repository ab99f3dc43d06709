"""Handing a caller to an agent: only in office hours, with what the agent's screen needs."""

from __future__ import annotations

from backend.officehours import OfficeHours, current_time
from ivr.contract import NEXT_AGENT, VAR_AGENT_REASON, VAR_CALL_ID, VAR_CARD_MASKED, VAR_NEXT
from ivr.flows.common import Call, CallOver


def agents_open() -> bool:
    return OfficeHours.from_settings().is_open(current_time())


def hand_over(call: Call, reason: str) -> None:
    """In office hours: note the hand-off and send the call to the queue (ends the flow).

    Out of hours: tell the caller the agents' hours and return, so the flow can offer
    self-service again."""
    if not agents_open():
        call.at("agent-closed")
        call.caller.play("agent-hours")
        return
    from backend.services.handoffs import record_handoff

    call.at("agent")
    info = call.caller.info
    call.backend(record_handoff(info.call_id, reason, call.card_masked, info.caller_number))
    call.caller.set_variable(VAR_AGENT_REASON, reason)
    call.caller.set_variable(VAR_CARD_MASKED, call.card_masked or "")
    call.caller.set_variable(VAR_CALL_ID, info.call_id)
    call.caller.play("agent-transfer")
    call.caller.set_variable(VAR_NEXT, NEXT_AGENT)
    raise CallOver
