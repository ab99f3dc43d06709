"""Masking in free text: card and ID numbers hidden, Asterisk call ids left whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.masking import scrub


@pytest.mark.parametrize(
    "call_id",
    ["1796105603.123459495", "1712000000.12345678", "1712000000.42", "pbx1-1796105603.99999999"],
)
def test_call_ids_are_left_alone(call_id: str) -> None:
    """An Asterisk unique id (seconds.sequence) is not a card number: it stays as the
    console and the agent's phone show it."""
    assert scrub(f"call {call_id} ended") == f"call {call_id} ended"
    assert scrub(f'{{"call_id": "{call_id}"}}') == f'{{"call_id": "{call_id}"}}'


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("card 123459495 lost", "card *****9495 lost"),
        ("card A12345678.", "card A****5678."),
        ("cards A12345678, 87654321", "cards A****5678, ****4321"),
        ("id 11010519491231002X.", "id 110105********002X."),
        ("call 1796105603.42 card 123459495", "call 1796105603.42 card *****9495"),
    ],
)
def test_card_and_id_numbers_beside_dots_are_still_masked(text: str, masked: str) -> None:
    """A number at the end of a sentence, or next to a call id, is still masked."""
    assert scrub(text) == masked


@given(
    seconds=st.integers(min_value=1_000_000_000, max_value=9_999_999_999),
    sequence=st.integers(min_value=0, max_value=10**12),
    card=st.from_regex(r"[A-Z]?[0-9]{8,9}", fullmatch=True),
)
def test_call_id_and_card_in_one_line(seconds: int, sequence: int, card: str) -> None:
    """Whatever the call id and card number, the id survives and the card does not."""
    call_id = f"{seconds}.{sequence}"
    scrubbed = scrub(f"call_id={call_id} card={card}")
    assert f"call_id={call_id} " in scrubbed
    assert f"card={card}" not in scrubbed


def test_texts_remembered_as_clean_are_only_texts_without_eight_digits() -> None:
    """The clean-text memory never keeps, or lets through, a text holding a number: the
    same card number logged again is masked again; a text seen clean stays as it is; the
    memory stops growing at its limit."""
    from backend import masking

    card_line = "card A12345678 reported"
    assert masking.scrub(card_line) == masking.scrub(card_line) == "card A****5678 reported"
    assert card_line not in masking._CLEAN
    clean = "entry prompt=enter-pin length=6 secret=True outcome=accepted"
    assert masking.scrub(clean) is clean
    assert clean in masking._CLEAN
    for n in range(masking._CLEAN_LIMIT + 10):
        masking.scrub(f"step {n}")
    assert len(masking._CLEAN) <= masking._CLEAN_LIMIT
    assert masking.scrub("id 11010519491231002X") == "id 110105********002X"
