"""A first end-to-end check of the backend against real PostgreSQL."""

from __future__ import annotations

from backend.outcomes import Actor, Channel, PinChanged, Verified, WrongPin
from backend.services.verify import verify_pin
from tests.backend.by_phone import change_by_phone
from tests.conftest import make_pin

IVR = Actor(Channel.IVR, "test-call")


async def test_issue_verify_change(issue) -> None:  # type: ignore[no-untyped-def]
    """A new card verifies with 123456, refuses a wrong PIN, and takes a new one."""
    card = await issue()
    assert isinstance(await verify_pin(card.digits, card.id_number, "123456", IVR), Verified)
    wrong = await verify_pin(card.digits, card.id_number, "000001", IVR)
    assert wrong == WrongPin(attempts_left=5)
    new = make_pin()
    result = await change_by_phone(card.digits, card.id_number, "123456", new, IVR)
    assert isinstance(result, PinChanged)
    verified = await verify_pin(card.digits, card.id_number, new, IVR)
    assert isinstance(verified, Verified)
    assert not verified.card.pin_is_initial
    assert verified.card.failed_attempts == 0
