"""Rules a new PIN must satisfy, each with a reason code the IVR and console can put in words."""

from __future__ import annotations

import datetime as dt
import itertools
from enum import StrEnum

INITIAL_PIN = "123456"
PIN_LENGTH = 6


class PinRule(StrEnum):
    LENGTH = "length"  # exactly six digits
    INITIAL = "initial"  # not the initial PIN 123456
    REPEATED = "repeated"  # not one digit six times
    SEQUENCE = "sequence"  # not an ascending or descending run
    NEAR_SEQUENCE = "near-sequence"  # not a run with one digit changed (123457)
    KEYPAD = "keypad"  # not two straight lines of the phone keypad (147258)
    COMMON = "common"  # not one of the most common six-digit PINs
    SAME_AS_OLD = "same-as-old"
    BIRTH_DATE = "birth-date"  # not the holder's birth date in a common form
    ID_SUFFIX = "id-suffix"  # not the last six characters of the ID number
    CARD_SUFFIX = "card-suffix"  # not the last six characters of the card number


# Among the most common six-digit PINs in published studies of leaked passwords:
# - Wang, Gu, Huang and Wang, "Understanding Human-Chosen PINs: Characteristics,
#   Distribution and Security", ACM AsiaCCS 2017 (Table 6, the top ten of each dataset,
#   Chinese leaks among them): 123456 first, then 111111 and 123123; keypad shapes
#   (147258, 123654, 321654, 789456, 159753) and 520520 and 520131, which sound like
#   "I love you" in Mandarin. A few patterns prevail and the top 5-8 % of PINs cover over
#   half of each dataset: hence the rules for runs, near-runs and keypad lines as well.
# - Markert, Bailey, Golla, Dürmuth and Aviv, "This PIN Can Be Easily Guessed: Analyzing
#   the Security of Smartphone Unlock PINs", IEEE S&P 2020 (their six-digit top ten).
# Most entries are caught by an earlier rule, which then names them; this list alone
# refuses 112233, 121212, 520520 and 520131.
COMMON_PINS = frozenset(
    {
        "000000",
        "111111",
        "112233",
        "121212",
        "123123",
        "123456",
        "123654",
        "159753",
        "321654",
        "520131",
        "520520",
        "654321",
        "666666",
        "789456",
    }
)

# Straight lines of three keys on the phone keypad (1-2-3 on top, 0 under 8): rows,
# columns (the middle one runs on through 0) and the two diagonals.
_KEYPAD_LINES = ("123", "456", "789", "147", "258", "369", "580", "159", "357")
_KEYPAD_STROKES = frozenset(_KEYPAD_LINES) | {line[::-1] for line in _KEYPAD_LINES}
# Ascending and descending runs of six keys, wrapping between 9 and 0.
_RUNS = frozenset(
    (digits * 2)[i : i + PIN_LENGTH] for digits in ("0123456789", "9876543210") for i in range(10)
)

# A run with exactly one digit changed: 123457, 023456, 124456, 987604 (1080 PINs).
_NEAR_RUNS = frozenset(
    run[:i] + digit + run[i + 1 :]
    for run in _RUNS
    for i in range(PIN_LENGTH)
    for digit in "0123456789"
    if digit != run[i]
)


def is_pin_shape(pin: str) -> bool:
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


def _is_run(pin: str) -> bool:
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    return steps in ({1}, {9})


def _is_keypad_pattern(pin: str) -> bool:
    """Two three-key lines of the keypad, each either way: 147258, 159357, 789456, 369963."""
    return pin[:3] in _KEYPAD_STROKES and pin[3:] in _KEYPAD_STROKES


def birth_date_forms(born: dt.date) -> set[str]:
    """Six-digit spellings of a birth date people pick as PINs: 491231, 311249, 123149,
    194912 and 121949 for 31 December 1949."""
    y4, y2, m, d = (
        f"{born.year:04d}",
        f"{born.year % 100:02d}",
        f"{born.month:02d}",
        f"{born.day:02d}",
    )
    return {y2 + m + d, d + m + y2, m + d + y2, y4 + m, m + y4}


def broken_rule(
    new_pin: str,
    *,
    old_pin: str | None = None,
    birth_date: dt.date | None = None,
    id_number: str | None = None,
    card_number: str | None = None,
) -> PinRule | None:
    """The first rule the new PIN breaks, or None when it may be used."""
    if not is_pin_shape(new_pin):
        return PinRule.LENGTH
    if new_pin == INITIAL_PIN:
        return PinRule.INITIAL
    if len(set(new_pin)) == 1:
        return PinRule.REPEATED
    if _is_run(new_pin):
        return PinRule.SEQUENCE
    if new_pin in _NEAR_RUNS:
        return PinRule.NEAR_SEQUENCE
    if _is_keypad_pattern(new_pin):
        return PinRule.KEYPAD
    if new_pin in COMMON_PINS:
        return PinRule.COMMON
    if old_pin is not None and new_pin == old_pin:
        return PinRule.SAME_AS_OLD
    if birth_date is not None and new_pin in birth_date_forms(birth_date):
        return PinRule.BIRTH_DATE
    if id_number is not None and new_pin == id_number[-PIN_LENGTH:]:
        return PinRule.ID_SUFFIX
    if card_number is not None and new_pin == card_number[-PIN_LENGTH:]:
        return PinRule.CARD_SUFFIX
    return None
