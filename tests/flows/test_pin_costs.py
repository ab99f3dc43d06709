"""What a PIN change by phone costs in argon2 work: one check of the old PIN, one hash of
the new one."""

from __future__ import annotations

from typing import Any

import pytest

from backend import secrethash
from tests.conftest import make_pin
from tests.flows.conftest import Phone
from tests.flows.helpers import id_keys, pin_works


async def test_a_pin_change_costs_two_argon2_operations(
    phone: Phone, issue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole change-PIN call runs argon2 twice: the old PIN checked once, the new one
    hashed once (its own salt makes a second hash unavoidable)."""
    card = await issue()
    new = make_pin()
    counts = {"verify": 0, "hash": 0}
    real_matches, real_hash = secrethash.pin_matches, secrethash.hash_pin

    async def matches(stored: str, pin: str) -> bool:
        counts["verify"] += 1
        return await real_matches(stored, pin)

    async def hashed(pin: str) -> str:
        counts["hash"] += 1
        return await real_hash(pin)

    monkeypatch.setattr(secrethash, "pin_matches", matches)
    monkeypatch.setattr(secrethash, "hash_pin", hashed)
    keys = [f"{card.digits}#", "123456#", id_keys(card.id_number), f"{new}#", f"{new}#"]
    t = await phone.call("change-pin", keys)
    assert "pin-changed" in t.heard
    assert counts == {"verify": 1, "hash": 1}
    monkeypatch.undo()
    assert await pin_works(card.digits, card.id_number, new)
