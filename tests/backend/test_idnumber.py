"""Resident ID numbers (GB 11643): check digit, birth date, normalising, masking, keyed hash."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend import idnumber
from backend.idnumber import InvalidIdNumber
from backend.masking import mask_card, mask_id, scrub

# The standard's own worked example: its check character is X.
EXAMPLE = "11010519491231002X"


def _with_check(first17: str) -> str:
    return first17 + idnumber.check_char(first17)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    """Any region, any real birth date, any sequence number, with its check character."""
    region = draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)))
    serial = draw(st.integers(min_value=0, max_value=999))
    return _with_check(f"{region}{born:%Y%m%d}{serial:03d}")


def test_worked_example_validates() -> None:
    """The standard's example ID has check character X and validates."""
    assert idnumber.check_char(EXAMPLE[:17]) == "X"
    assert idnumber.validate(EXAMPLE) == EXAMPLE
    assert idnumber.is_valid(EXAMPLE)


def test_digit_check_character() -> None:
    """An ID whose check character is a digit validates, and every other digit is refused."""
    number = _with_check("44030519850714121")
    assert number[-1].isdigit()
    assert idnumber.validate(number) == number
    for other in "0123456789X":
        if other != number[-1]:
            with pytest.raises(InvalidIdNumber) as info:
                idnumber.validate(number[:17] + other)
            assert info.value.reason == "check-digit"


def test_lower_case_x_is_accepted_and_upper_cased() -> None:
    """A lower-case x check character is the same as X."""
    assert idnumber.validate(EXAMPLE.lower()) == EXAMPLE


def test_keypad_star_stands_for_x() -> None:
    """A phone keypad's * is read as X by normalise and so validates."""
    keyed = EXAMPLE[:17] + "*"
    assert idnumber.normalise(keyed) == EXAMPLE
    assert idnumber.validate(keyed) == EXAMPLE


def test_spaces_are_ignored() -> None:
    """Spaces inside and around the number are dropped."""
    assert idnumber.validate(f"  {EXAMPLE[:6]} {EXAMPLE[6:14]} {EXAMPLE[14:]} ") == EXAMPLE


@pytest.mark.parametrize(
    "text",
    [
        "",
        EXAMPLE[:17],
        EXAMPLE + "1",
        "X1010519491231002X",
        "1101051949123100X2",
        "11010519491231002Y",
        "110105194912310０2X",
    ],
)
def test_bad_shapes(text: str) -> None:
    """Wrong length, misplaced X, other letters and non-ASCII digits are refused by shape."""
    with pytest.raises(InvalidIdNumber) as info:
        idnumber.validate(text)
    assert info.value.reason == "shape"
    assert not idnumber.is_valid(text)


@pytest.mark.parametrize("born", ["19490230", "19491301", "19490000", "20230229", "00001231"])
def test_impossible_birth_dates(born: str) -> None:
    """A correct check character does not rescue an impossible birth date."""
    number = _with_check(f"110105{born}002")
    with pytest.raises(InvalidIdNumber) as info:
        idnumber.validate(number)
    assert info.value.reason == "birth-date"


def test_leap_day_is_a_date() -> None:
    """29 February of a leap year is a valid birth date."""
    number = _with_check("11010520000229002")
    assert idnumber.birth_date(number) == dt.date(2000, 2, 29)
    assert idnumber.is_valid(number)


def test_error_message_never_holds_the_number() -> None:
    """The exception text names the reason only, never the number."""
    wrong = EXAMPLE[:17] + "1"
    with pytest.raises(InvalidIdNumber) as info:
        idnumber.validate(wrong)
    assert wrong not in str(info.value)
    assert wrong[:17] not in str(info.value)


@given(valid_ids())
def test_generated_ids_validate(number: str) -> None:
    """Every ID built with its check character validates and keeps its birth date."""
    assert idnumber.validate(number) == number
    assert idnumber.birth_date(number) == dt.date(
        int(number[6:10]), int(number[10:12]), int(number[12:14])
    )


@given(valid_ids(), st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_changing_one_character_breaks_it(number: str, position: int, replacement: str) -> None:
    """Replacing any single character with a different one makes the ID invalid."""
    if position < 17 and replacement == "X":
        replacement = "7"
    if number[position] == replacement:
        replacement = "0" if replacement != "0" else "1"
    changed = number[:position] + replacement + number[position + 1 :]
    assert changed != number
    assert not idnumber.is_valid(changed)


@given(valid_ids())
def test_swapping_two_different_neighbours_breaks_it(number: str) -> None:
    """Swapping two adjacent unequal digits among the first 17 is caught."""
    for i in range(16):
        if number[i] != number[i + 1]:
            swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
            assert not idnumber.is_valid(swapped)


def test_mask_id() -> None:
    """A masked ID keeps the region and the last four characters only."""
    assert mask_id(EXAMPLE) == "110105********002X"
    assert mask_id("12345") == "*****"


def test_mask_card() -> None:
    """A masked card keeps its letter and last four digits."""
    assert mask_card("A12345678") == "A****5678"
    assert mask_card("123456789") == "*****6789"
    assert mask_card("1234") == "****"


def test_scrub_masks_numbers_in_free_text() -> None:
    """Free text loses full ID numbers (either case of x) and card numbers, keeps references."""
    text = f"holder {EXAMPLE} and {EXAMPLE.lower()} card A12345678 ref 260915000017"
    scrubbed = scrub(text)
    assert EXAMPLE not in scrubbed
    assert EXAMPLE.lower() not in scrubbed
    assert "A12345678" not in scrubbed
    assert "110105********002X" in scrubbed
    assert "A****5678" in scrubbed
    assert "260915000017" in scrubbed


@given(valid_ids())
def test_scrub_never_leaves_a_generated_id(number: str) -> None:
    """No generated ID survives scrubbing of a sentence containing it."""
    assert number not in scrub(f"caller said {number}, twice: {number}")


def test_keyed_hash_depends_on_the_key() -> None:
    """The same number hashes alike under one key and differently under another."""
    first = idnumber.keyed_hash(EXAMPLE, b"key-one")
    assert first == idnumber.keyed_hash(EXAMPLE, b"key-one")
    assert first != idnumber.keyed_hash(EXAMPLE, b"key-two")
    assert first != idnumber.keyed_hash(EXAMPLE[:17] + "1", b"key-one")
    assert EXAMPLE not in first
    assert len(first) == 64
