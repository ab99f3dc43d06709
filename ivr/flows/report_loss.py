"""Self-service loss report, at any hour, for cards whose PIN is no longer the initial one:
card number #, ID number #, PIN #; the card is read back and 1 confirms; the reference is
read back, and 9 repeats it."""

from __future__ import annotations

from backend.outcomes import InitialPinRefused, LossReported, Proven
from backend.services.report_loss import report_loss_self_service
from backend.services.verify import prove_holder
from ivr.contract import REASON_INITIAL_PIN_LOSS, SCRIPT_REPORT_LOSS
from ivr.flows import agent
from ivr.flows.common import Call, ask_card_digits, ask_id_number, ask_pin, say_refusal
from ivr.flows.script import as_script
from ivr.registry import register

REFERENCE_REPEATS = 3
# Twelve digits in three equal groups of four: short enough to hold while writing, and
# the same rhythm each time. The reference's own structure (6-digit date, 5-digit serial,
# check digit) would leave groups of six and one, which are harder to copy down.
REFERENCE_GROUP = 4
REFERENCE_PAUSE_MS = 600


def say_reference(call: Call, reference: str) -> None:
    """The reference in groups, a short pause between them."""
    for start in range(0, len(reference), REFERENCE_GROUP):
        if start:
            call.caller.pause(REFERENCE_PAUSE_MS)
        call.caller.say_digits(reference[start : start + REFERENCE_GROUP])


def read_reference(call: Call, intro: str, reference: str) -> None:
    """The intro asks the caller to note the reference; then it, then the repeat offer."""
    call.at("reference")
    call.caller.play(intro)
    say_reference(call, reference)
    for _ in range(REFERENCE_REPEATS):
        if call.caller.choose_after("loss-reference-repeat", "9") != "9":
            return
        say_reference(call, reference)


def initial_pin_refused(call: Call) -> None:
    """Told why; in office hours offered an agent, else told the agents' hours."""
    call.caller.play("loss-initial-pin-refused")
    if agent.agents_open():
        if call.caller.choose_after("agent-offer", "0") == "0":
            agent.hand_over(call, REASON_INITIAL_PIN_LOSS)
    else:
        call.caller.play("agent-hours")


def report_loss_flow(call: Call) -> None:
    card = ask_card_digits(call)
    holder = ask_id_number(call)
    pin = ask_pin(call, "enter-pin")
    call.at("confirm")
    call.caller.play("loss-card-readback")
    call.caller.say_digits(card)
    if call.caller.menu("loss-confirm", "1*") == "*":
        call.caller.play("loss-cancelled")
        return
    call.at("report")
    proof = call.backend(
        prove_holder(card, holder, pin, call.actor, "report-loss", call.caller_number)
    )
    if not isinstance(proof, Proven):
        say_refusal(call, proof)
        return
    outcome = call.backend(report_loss_self_service(proof, call.actor))
    if isinstance(outcome, LossReported):
        intro = "loss-already-reported" if outcome.already_reported else "loss-reported"
        read_reference(call, intro, outcome.reference)
    elif isinstance(outcome, InitialPinRefused):
        initial_pin_refused(call)
    else:
        say_refusal(call, outcome)


@register(SCRIPT_REPORT_LOSS)
@as_script
def report_loss_script(call: Call) -> None:
    """The loss-report flow on its own, for a dialplan that routes to it directly."""
    report_loss_flow(call)
