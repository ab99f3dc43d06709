"""Handing a caller to an agent: only in office hours, with what the agent's screen needs."""

from __future__ import annotations

from backend.officehours import OfficeHours, current_time
from backend.services.common import best_effort
from backend.services.handoffs import record_handoff
from ivr.agi.bridge import await_
from ivr.contract import NEXT_AGENT, VAR_AGENT_REASON, VAR_CALL_ID, VAR_CARD_MASKED, VAR_NEXT
from ivr.flows.common import Call, CallOver
from prompts.catalogue import Prompt


def agents_open() -> bool:
    return OfficeHours.from_settings().is_open(current_time())


def hand_over(call: Call, reason: str) -> None:
    """In office hours: note the hand-off (if the database lets us, within its usual
    bound) and send the call to the queue (ends the flow).

    Out of hours: tell the caller the agents' hours and return, so the flow can offer
    self-service again."""
    if not agents_open():
        call.at("agent-closed")
        call.caller.play(Prompt.AGENT_HOURS)
        return
    call.at("agent")
    info = call.caller.info
    # Best effort: the caller reaches the queue even while the database is down; the
    # agent's phone still shows reason, card and call id from the variables below.
    await_(
        best_effort(
            record_handoff(info.call_id, reason, call.card_masked, info.caller_number),
            "handoff",
        )
    )
    call.caller.set_variable(VAR_AGENT_REASON, reason)
    call.caller.set_variable(VAR_CARD_MASKED, call.card_masked or "")
    call.caller.set_variable(VAR_CALL_ID, info.call_id)
    call.caller.play(Prompt.AGENT_TRANSFER)
    call.caller.set_variable(VAR_NEXT, NEXT_AGENT)
    raise CallOver
