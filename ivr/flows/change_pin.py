"""Change PIN, in the order cardholders are told: card number #, old PIN #, ID number #,
new PIN #, new PIN again #.

The old PIN is checked once, right after the ID number; the proof it gives is what the
change is applied to, so the old PIN is never checked twice."""

from __future__ import annotations

from backend.outcomes import PinChanged, PinRejected, Proven
from backend.services.change_pin import change_pin, new_pin_problem
from ivr.caller import NoValidInput
from ivr.flows.common import Call, Keyed, Served, ask_new_pin, prove, say_refusal, say_rule
from prompts.catalogue import PinPrompt, Prompt

NEW_PIN_TRIES = 3


def change_pin_flow(call: Call) -> Served:
    proven = prove(call, "change-pin")
    if proven is None:
        return Served.NOT_DONE
    return set_new_pin(call, *proven)


def set_new_pin(call: Call, keyed: Keyed, proof: Proven) -> Served:
    """The new PIN twice, for a card just proven; the rules are said before the first."""
    for attempt in range(1, NEW_PIN_TRIES + 1):
        # Said once, as the first entry's prompt, so a key cuts them short.
        prompt: PinPrompt = Prompt.ENTER_NEW_PIN_RULES if attempt == 1 else Prompt.ENTER_NEW_PIN
        new_pin = ask_new_pin(call, prompt)
        rule = new_pin_problem(
            new_pin, old_pin=keyed.pin, id_number=keyed.id_number, card_digits=keyed.card
        )
        if rule is None and ask_new_pin(call, Prompt.ENTER_NEW_PIN_AGAIN) != new_pin:
            call.caller.play(Prompt.NEW_PINS_DIFFER)
        elif rule is None:
            call.at("change")
            outcome = call.backend(
                change_pin(proof, new_pin, call.actor, old_pin=keyed.pin, id_number=keyed.id_number)
            )
            if isinstance(outcome, PinChanged):
                call.caller.play(Prompt.PIN_CHANGED)
                return Served.DONE
            if not isinstance(outcome, PinRejected):
                say_refusal(call, outcome)
                return Served.NOT_DONE
            say_rule(call, outcome.rule)
        else:
            say_rule(call, rule)
        if attempt < NEW_PIN_TRIES:
            call.caller.say_tries_left(NEW_PIN_TRIES - attempt)
    raise NoValidInput("no acceptable new PIN")
