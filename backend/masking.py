"""Masking of card and ID numbers wherever they appear in text meant for people or logs."""

from __future__ import annotations

import re

# An 18-character resident ID (GB 11643): keep the region (6) and the last 4.
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
# A card number: an optional letter and 8-9 digits; keep the letter and the last 4 digits.
# Longer digit runs (reference numbers, timestamps) are left alone, and so are the parts of
# a dotted number: an Asterisk call id is `seconds.sequence` (`1796105603.123459495`), and
# masking its sequence would make log lines disagree with the console's call id.
_CARD_RE = re.compile(
    r"(?<![0-9A-Za-z*])(?<![0-9]\.)([A-Za-z]?)(\d{4,5})(\d{4})(?![0-9])(?!\.[0-9])"
)


def mask_id(id_number: str) -> str:
    """`11010519491231002X` -> `110105********002X`; anything shorter is hidden whole."""
    if len(id_number) == 18:
        return f"{id_number[:6]}{'*' * 8}{id_number[-4:]}"
    return "*" * len(id_number)


def mask_card(card_number: str) -> str:
    """`A12345678` -> `A*****678`-style: the letter and the last 4 digits stay visible."""
    if len(card_number) <= 4:
        return "*" * len(card_number)
    prefix = card_number[0] if card_number[0].isalpha() else ""
    body = card_number[len(prefix) :]
    return f"{prefix}{'*' * (len(body) - 4)}{body[-4:]}"


# Both patterns need eight digits in a row; text without them (most log values) is left
# as it is without running either.
EIGHT_DIGITS_RE = re.compile(r"\d{8}")


# Texts seen to hold no eight digits in a row: most logged values recur (event names,
# prompts, a flow's steps), and searching them was most of a log line's masking. Only
# short texts, and only so many; a text with eight digits in a row is never kept.
_CLEAN: dict[str, None] = {}
_CLEAN_LIMIT = 4096
_CLEAN_MAX_LEN = 256


def scrub(text: str) -> str:
    """Mask every ID number and card number found in free text."""
    if text in _CLEAN:
        return text
    if EIGHT_DIGITS_RE.search(text) is None:
        if len(text) <= _CLEAN_MAX_LEN and len(_CLEAN) < _CLEAN_LIMIT:
            _CLEAN[text] = None
        return text
    text = _ID_RE.sub(lambda m: f"{m.group(1)}{'*' * 8}{m.group(2)}", text)
    return _CARD_RE.sub(lambda m: f"{m.group(1)}{'*' * len(m.group(2))}{m.group(3)}", text)
