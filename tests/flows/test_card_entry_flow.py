"""The card number entry: the caller keys the card's digits only, as many as the setting says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend.settings import reset_settings
from prompts.catalogue import render
from tests.conftest import make_pin
from tests.flows.conftest import Phone
from tests.flows.helpers import id_keys, reports


@pytest.fixture
def nine_digit_cards(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IVR_CARD_DIGITS", "9")
    reset_settings()
    yield
    monkeypatch.delenv("IVR_CARD_DIGITS")
    reset_settings()


async def test_letter_keyed_as_digit_is_caught_at_the_entry(phone: Phone, issue: Any) -> None:
    """Nine digits for an 8-digit card (the letter keyed as one): told at once that letters
    are left out, asked again, and the report goes through with the 8 digits."""
    pin = make_pin()
    card = await issue(pin=pin)
    keys = [f"1{card.digits}#", f"{card.digits}#", f"{pin}#", id_keys(card.id_number), "1", "-"]
    t = await phone.call("report-loss", keys)
    assert t.heard[:7] == [
        "enter-card-number",
        "card-number-wrong-length",
        "tries-left",
        "count-2",
        "times",
        "enter-card-number",
        "enter-pin",
    ]
    assert len(await reports(card.card_number)) == 1


async def test_wrong_length_counts_as_one_of_the_tries(phone: Phone, issue: Any) -> None:
    """Three wrong lengths (9, 7, 10 digits) use up the entry's three tries: the call ends
    without the ID being asked."""
    card = await issue()
    d = card.digits
    t = await phone.call("report-loss", [f"1{d}#", f"{d[:7]}#", f"12{d}#"])
    assert t.heard.count("card-number-wrong-length") == 2
    assert "enter-id-number" not in t.heard
    assert t.heard.count("enter-card-number") == 3


def test_prompt_names_the_configured_length(nine_digit_cards: None) -> None:
    """The prompt says "only the digits" and how many, from the setting."""
    text = render()["card-number-wrong-length"]
    assert "字母不用输入" in text and "九位数字" in text


async def test_length_follows_the_setting(phone: Phone, issue: Any, nine_digit_cards: None) -> None:
    """With 9-digit cards configured, an 8-digit entry is the wrong length."""
    card = await issue()
    t = await phone.call("report-loss", [f"{card.digits}#", "-"])
    assert t.heard[:2] == ["enter-card-number", "card-number-wrong-length"]
