"""Resident ID numbers (GB 11643-1999): normalising, the check digit, the birth date."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH = dt.date(1900, 1, 1)
_SHAPE = re.compile(r"\d{17}[\dX]", re.ASCII)


class InvalidIdNumber(ValueError):
    """The text is not a valid 18-character resident ID number."""

    def __init__(self, reason: str) -> None:
        # The number itself never goes into the message: it is personal data.
        super().__init__(f"invalid ID number: {reason}")
        self.reason = reason


def check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def normalise(text: str) -> str:
    """Upper-case, spaces removed; a phone keypad's `*` stands for the letter X."""
    return text.strip().replace(" ", "").replace("*", "X").upper()


def validate(text: str) -> str:
    """Return the normalised ID number or raise InvalidIdNumber (shape, date, check digit)."""
    number = normalise(text)
    if not _SHAPE.fullmatch(number):
        raise InvalidIdNumber("shape")
    born = birth_date(number)
    if born is None or not EARLIEST_BIRTH <= born <= dt.date.today():
        raise InvalidIdNumber("birth-date")
    if check_char(number[:17]) != number[17]:
        raise InvalidIdNumber("check-digit")
    return number


def is_valid(text: str) -> bool:
    try:
        validate(text)
    except InvalidIdNumber:
        return False
    return True


def birth_date(number: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(number[6:14], "%Y%m%d").date()
    except ValueError:
        return None


def keyed_hash(number: str, key: bytes) -> str:
    """What verification needs: a keyed hash, useless without the key kept outside the DB."""
    return hmac.new(key, b"id:" + number.encode(), hashlib.sha256).hexdigest()
