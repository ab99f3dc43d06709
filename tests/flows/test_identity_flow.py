"""What a caller hears when checks are paused, and entries that take digits only."""

from __future__ import annotations

import random
import uuid
from typing import Any

from sqlalchemy import text

from backend.db.engine import get_engine
from backend.masking import mask_card
from backend.outcomes import Actor, Channel
from backend.services.verify import verify_pin
from backend.settings import get_settings
from tests.conftest import make_id_number, make_pin
from tests.flows.conftest import Phone
from tests.flows.helpers import id_keys, pin_works, reports


def _number() -> str:
    return f"137{random.randint(0, 99_999_999):08d}"


async def _refusals(digits: str) -> int:
    """Audit rows of checks refused for a paused budget, for these card digits."""
    async with get_engine().connect() as conn:
        count = await conn.execute(
            text(
                "SELECT count(*) FROM audit_events"
                " WHERE outcome = 'too-many-tries' AND card_masked = :m"
            ),
            {"m": mask_card(digits)},
        )
        return int(count.scalar_one())


def _call() -> Actor:
    return Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")


async def test_a_paused_card_is_told_so_and_nothing_is_changed(phone: Phone, issue: Any) -> None:
    """After too many wrong ID numbers for a card, even its holder hears that the card's
    entries are paused (and to try later or ask an agent), then goodbye; no report."""
    pin = make_pin()
    card = await issue(pin=pin)
    for _ in range(get_settings().identity_card_limit):
        await verify_pin(card.digits, make_id_number(), pin, _call())
    keys = [f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "1"]
    t = await phone.call("report-loss", keys, caller_number=_number())
    assert t.heard[-2:] == ["identity-paused", "goodbye"]
    assert await reports(card.card_number) == []
    assert await _refusals(card.digits) == 1


async def test_a_paused_caller_number_is_told_so(phone: Phone, issue: Any) -> None:
    """A phone number that keyed too many wrong numbers is paused for every card."""
    number = _number()
    for _ in range(get_settings().identity_caller_limit):
        digits = f"{random.randint(10_000_000, 99_999_999)}"
        await verify_pin(digits, make_id_number(), "123456", _call(), number)
    card = await issue()
    new = make_pin()
    keys = [f"{card.digits}#", "123456#", id_keys(card.id_number), f"{new}#", f"{new}#"]
    t = await phone.call("change-pin", keys, caller_number=number)
    assert "identity-paused" in t.heard and "enter-new-pin-rules" not in t.heard
    assert await pin_works(card.digits, card.id_number, "123456")
    t = await phone.call("change-pin", keys, caller_number=_number())
    assert "pin-changed" in t.heard


async def test_letter_keys_are_never_part_of_a_number(phone: Phone, issue: Any) -> None:
    """A-D keyed inside the card number, the PIN or the new PIN: told the key is wrong and
    asked again; the change then goes through with the digits alone."""
    card = await issue()
    new = make_pin()
    keys = [
        f"{card.digits[:4]}A{card.digits[5:]}#",
        f"{card.digits}#",
        "12B456#",
        "123456#",
        id_keys(card.id_number),
        f"{new[:5]}C#",
        f"{new}#",
        f"{new}#",
    ]
    t = await phone.call("change-pin", keys, caller_number=_number())
    assert t.heard.count("invalid-key") == 3
    assert "pin-changed" in t.heard
    assert await pin_works(card.digits, card.id_number, new)
