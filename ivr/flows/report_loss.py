"""Self-service loss report, at any hour, for cards whose PIN is no longer the initial one:
card number #, PIN #, ID number #; a card still on its initial PIN hears so at once, with
what the caller can do instead; else 1 confirms, and the reference is read in groups, with
the written report still to make, and 9 repeats it."""

from __future__ import annotations

from backend.outcomes import InitialPinRefused, LossReported, Proven
from backend.services.report_loss import report_loss_self_service
from ivr.caller import AgentRequested
from ivr.contract import REASON_INITIAL_PIN_LOSS
from ivr.flows import agent
from ivr.flows.change_pin import set_new_pin
from ivr.flows.common import Call, Keyed, Served, prove, say_refusal
from prompts.catalogue import Prompt

REFERENCE_REPEATS = 3
# Twelve digits in three equal groups of four: short enough to hold while writing, and
# the same rhythm each time. The reference's own structure (6-digit date, 5-digit serial,
# check digit) would leave groups of six and one, which are harder to copy down.
REFERENCE_GROUP = 4
REFERENCE_PAUSE_MS = 600
# Waiting for 9 after the reference: long enough to decide, short enough not to be dead air.
REPEAT_WAIT_MS = 3000
CONFIRM, CHANGE_PIN_NOW, BACK = "1", "2", "*"


def say_reference(call: Call, reference: str) -> None:
    """The reference in groups, a short pause between them."""
    for start in range(0, len(reference), REFERENCE_GROUP):
        if start:
            call.caller.pause(REFERENCE_PAUSE_MS)
        call.caller.say_digits(reference[start : start + REFERENCE_GROUP])


def read_reference(call: Call, intro: Prompt, reference: str) -> None:
    """ "Please note" first, the reference, the written report still to make; then 9
    repeats the reference."""
    call.at("reference")
    call.caller.play(intro)
    say_reference(call, reference)
    call.caller.play(Prompt.LOSS_WRITTEN_NEXT)
    for _ in range(REFERENCE_REPEATS):
        wait = REPEAT_WAIT_MS
        if call.caller.choose_after(Prompt.LOSS_REFERENCE_REPEAT, "9", timeout_ms=wait) != "9":
            return
        say_reference(call, reference)


def initial_pin_refused(call: Call, keyed: Keyed, proof: Proven) -> Served:
    """Said as soon as the PIN is proven: self-service reports need a PIN of the holder's
    own. The caller may set one now (with the proof just given), reach an agent in office
    hours, or go to a counter."""
    call.at("initial-pin")
    call.caller.play(Prompt.LOSS_INITIAL_PIN_REFUSED)
    if agent.agents_open():
        choices, prompt = CHANGE_PIN_NOW + "0" + BACK, Prompt.LOSS_INITIAL_PIN_CHOICES
    else:
        choices, prompt = CHANGE_PIN_NOW + BACK, Prompt.LOSS_INITIAL_PIN_CHOICES_CLOSED
    try:
        key = call.caller.menu(prompt, choices)
    except AgentRequested:
        agent.hand_over(call, REASON_INITIAL_PIN_LOSS)
        return Served.NOT_DONE
    if key == CHANGE_PIN_NOW:
        return set_new_pin(call, keyed, proof)
    return Served.NOT_DONE


def report_loss_flow(call: Call) -> Served:
    proven = prove(call, "report-loss")
    if proven is None:
        return Served.NOT_DONE
    keyed, proof = proven
    if proof.card.pin_is_initial:
        return initial_pin_refused(call, keyed, proof)
    call.at("confirm")
    if call.caller.menu(Prompt.LOSS_CONFIRM, CONFIRM + BACK) == BACK:
        call.caller.play(Prompt.LOSS_CANCELLED)
        return Served.NOT_DONE
    call.at("report")
    outcome = call.backend(report_loss_self_service(proof, call.actor))
    if isinstance(outcome, LossReported):
        intro = Prompt.LOSS_ALREADY_REPORTED if outcome.already_reported else Prompt.LOSS_REPORTED
        read_reference(call, intro, outcome.reference)
        return Served.DONE
    if isinstance(outcome, InitialPinRefused):
        # Set back to the initial PIN since the proof (at a counter): the same answer.
        return initial_pin_refused(call, keyed, proof)
    say_refusal(call, outcome)
    return Served.NOT_DONE
