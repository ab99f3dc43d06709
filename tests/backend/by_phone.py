"""What the phone flows do, as one call each: prove card, ID and PIN, then use the proof."""

from __future__ import annotations

from backend.outcomes import (
    Actor,
    ChangePinOutcome,
    Proven,
    ProveOutcome,
    ReportLossOutcome,
)
from backend.services.change_pin import change_pin
from backend.services.report_loss import report_loss_self_service
from backend.services.verify import prove_holder

Refused = ProveOutcome  # every answer of prove_holder but Proven


async def change_by_phone(
    digits: str, id_number: str, old_pin: str, new_pin: str, actor: Actor
) -> ChangePinOutcome | Refused:
    proof = await prove_holder(digits, id_number, old_pin, actor, "change-pin")
    if not isinstance(proof, Proven):
        return proof
    return await change_pin(proof, new_pin, actor, old_pin=old_pin, id_number=id_number)


async def report_by_phone(
    digits: str, id_number: str, pin: str, actor: Actor
) -> ReportLossOutcome | Refused:
    proof = await prove_holder(digits, id_number, pin, actor, "report-loss")
    if not isinstance(proof, Proven):
        return proof
    return await report_loss_self_service(proof, actor)
