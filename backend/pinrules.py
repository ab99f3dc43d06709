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
    SAME_AS_OLD = "same-as-old"
    BIRTH_DATE = "birth-date"  # not the holder's birth date in a common form
    ID_SUFFIX = "id-suffix"  # not the last six characters of the ID number
    CARD_SUFFIX = "card-suffix"  # not the last six characters of the card number


def is_pin_shape(pin: str) -> bool:
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


def _is_run(pin: str) -> bool:
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    return steps in ({1}, {9})


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
    if old_pin is not None and new_pin == old_pin:
        return PinRule.SAME_AS_OLD
    if birth_date is not None and new_pin in birth_date_forms(birth_date):
        return PinRule.BIRTH_DATE
    if id_number is not None and new_pin == id_number[-PIN_LENGTH:]:
        return PinRule.ID_SUFFIX
    if card_number is not None and new_pin == card_number[-PIN_LENGTH:]:
        return PinRule.CARD_SUFFIX
    return None
