"""Hear the card's status: card number #, PIN #, ID number #, then the status in words."""

from __future__ import annotations

from backend.outcomes import CardState
from ivr.flows.common import Call, Served, prove
from prompts.catalogue import Prompt

STATE_PROMPTS: dict[CardState, Prompt] = {
    CardState.ACTIVE: Prompt.STATUS_ACTIVE,
    CardState.LOST_TEMPORARY: Prompt.STATUS_LOST_TEMPORARY,
    CardState.LOST_WRITTEN: Prompt.STATUS_LOST_WRITTEN,
    CardState.LOCKED: Prompt.STATUS_LOCKED,
    CardState.CANCELLED: Prompt.STATUS_CANCELLED,
}


def card_status_flow(call: Call) -> Served:
    proven = prove(call, "verify")
    if proven is None:
        return Served.NOT_DONE
    card = proven[1].card
    call.at("status")
    pin_state = Prompt.STATUS_PIN_INITIAL if card.pin_is_initial else Prompt.STATUS_PIN_ENABLED
    call.caller.play(Prompt.STATUS_INTRO, STATE_PROMPTS[card.state], pin_state)
    return Served.DONE
