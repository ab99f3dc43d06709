"""Change PIN, in the order cardholders are told: card number #, old PIN #, ID number #,
new PIN #, new PIN again #.

The old PIN is checked once, right after the ID number; the proof it gives is what the
change is applied to, so the old PIN is never checked twice."""

from __future__ import annotations

from backend.outcomes import PinChanged, PinRejected, Proven
from backend.services.change_pin import change_pin, new_pin_problem
from backend.services.verify import prove_holder
from ivr.caller import NoValidInput
from ivr.contract import SCRIPT_CHANGE_PIN
from ivr.flows.common import (
    Call,
    ask_card_digits,
    ask_id_number,
    ask_new_pin,
    ask_pin,
    say_refusal,
    say_rule,
)
from ivr.flows.script import as_script
from ivr.registry import register

NEW_PIN_TRIES = 3


def change_pin_flow(call: Call) -> None:
    """Returns after the caller has heard the outcome; the caller decides what next."""
    card = ask_card_digits(call)
    old_pin = ask_pin(call, "enter-pin")
    holder = ask_id_number(call)
    call.at("verify")
    proof = call.backend(
        prove_holder(card, holder, old_pin, call.actor, "change-pin", call.caller_number)
    )
    if not isinstance(proof, Proven):
        say_refusal(call, proof)
        return
    for attempt in range(NEW_PIN_TRIES):
        # The rules are said once, as the first entry's prompt, so a key cuts them short.
        new_pin = ask_new_pin(call, "enter-new-pin-rules" if attempt == 0 else "enter-new-pin")
        rule = new_pin_problem(new_pin, old_pin=old_pin, id_number=holder, card_digits=card)
        if rule is not None:
            say_rule(call, rule)
            continue
        if ask_new_pin(call, "enter-new-pin-again") != new_pin:
            call.caller.play("new-pins-differ")
            continue
        call.at("change")
        outcome = call.backend(
            change_pin(proof, new_pin, call.actor, old_pin=old_pin, id_number=holder)
        )
        if isinstance(outcome, PinChanged):
            call.caller.play("pin-changed")
            return
        if isinstance(outcome, PinRejected):
            say_rule(call, outcome.rule)
            continue
        say_refusal(call, outcome)
        return
    raise NoValidInput("no acceptable new PIN")


@register(SCRIPT_CHANGE_PIN)
@as_script
def change_pin_script(call: Call) -> None:
    """The change-PIN flow on its own, for a dialplan that routes to it directly."""
    change_pin_flow(call)
