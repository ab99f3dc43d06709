"""Hear the card's status: card number #, ID number #, PIN #, then the status in words."""

from __future__ import annotations

from backend.outcomes import CardState, Verified
from backend.services.verify import verify_pin
from ivr.flows.common import Call, ask_card_digits, ask_id_number, ask_pin, say_refusal

_STATE_PROMPTS = {
    CardState.ACTIVE: "status-active",
    CardState.LOST_TEMPORARY: "status-lost-temporary",
    CardState.LOST_WRITTEN: "status-lost-written",
    CardState.LOCKED: "status-locked",
    CardState.CANCELLED: "status-cancelled",
}


def card_status_flow(call: Call) -> None:
    card = ask_card_digits(call)
    holder = ask_id_number(call)
    pin = ask_pin(call, "enter-pin")
    call.at("status")
    outcome = call.backend(verify_pin(card, holder, pin, call.actor, call.caller_number))
    if not isinstance(outcome, Verified):
        say_refusal(call, outcome)
        return
    status = outcome.card
    call.caller.play("status-intro", _STATE_PROMPTS[status.state])
    call.caller.play("status-pin-initial" if status.pin_is_initial else "status-pin-enabled")
