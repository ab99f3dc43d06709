"""A hang-up at any prompt of both flows leaves the data exactly as before or as after, and
one audit record of where the call ended."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.masking import mask_card
from ivr.fake_asterisk import Transcript
from tests.conftest import make_pin
from tests.flows.conftest import Phone
from tests.flows.helpers import id_keys, pin_works, reports

CHANGE_PROMPTS = [
    "enter-card-number",
    "enter-pin",
    "enter-id-number",
    "enter-new-pin-rules",
    "enter-new-pin-again",
    "pin-changed",
]
LOSS_PROMPTS = [
    "enter-card-number",
    "enter-pin",
    "enter-id-number",
    "loss-confirm",
    "loss-reported",
    "loss-reference-repeat",
]


async def hangup_records(card_digits: str, transcript: Transcript) -> list[Any]:
    """The hang-up records of this call: its card's mask and its call id (a mask alone
    may be another test's card with the same last digits)."""
    async with get_engine().connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT detail->>'step' AS step FROM audit_events "
                "WHERE action = 'call' AND outcome = 'hangup' AND card_masked = :m "
                "AND actor = :a"
            ),
            {"m": mask_card(card_digits), "a": transcript.call_id},
        )
        return list(rows)


@pytest.mark.parametrize("prompt", CHANGE_PROMPTS)
async def test_hangup_during_change_pin(phone: Phone, issue: Any, prompt: str) -> None:
    """Hang up while `prompt` plays: the old PIN works, or (only once told) the new one."""
    card = await issue()
    new = make_pin()
    keys = [f"{card.digits}#", "123456#", id_keys(card.id_number), f"{new}#", f"{new}#"]
    t = await phone.call("change-pin", keys, hangup_at=prompt)
    assert t.ended == "caller-hangup"
    changed = await pin_works(card.digits, card.id_number, new)
    assert changed == (prompt == "pin-changed")
    assert await pin_works(card.digits, card.id_number, "123456") != changed
    if prompt != "enter-card-number":
        # The card is known from the first entry on: the record names it and the step.
        assert len(await hangup_records(card.digits, t)) == 1


@pytest.mark.parametrize("prompt", LOSS_PROMPTS)
async def test_hangup_during_loss_report(phone: Phone, issue: Any, prompt: str) -> None:
    """Hang up while `prompt` plays: no report, or (once confirmed) exactly one."""
    pin = make_pin()
    card = await issue(pin=pin)
    keys = [f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "1", "-"]
    t = await phone.call("report-loss", keys, hangup_at=prompt)
    assert t.ended == "caller-hangup"
    stored = await reports(card.card_number)
    reported = prompt in ("loss-reported", "loss-reference-repeat")
    assert len(stored) == (1 if reported else 0)
    if prompt != "enter-card-number":
        steps = [r.step for r in await hangup_records(card.digits, t)]
        assert len(steps) == 1 and steps[0]
