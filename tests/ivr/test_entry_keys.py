"""Keys A-D (on some keypads, returned by Asterisk as letters) are never part of an entry:
an entry holding one is a wrong entry, re-asked like any other."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.caller import Caller, NoValidInput
from prompts.catalogue import Prompt
from tests.conftest import IssuedCard, Phone
from tests.flows.helpers import id_keys
from tests.ivr.conftest import Line

# "You can try two more times", after a first failed try.
LEFT_2 = ["tries-left", "count-2", "times"]


def _ask(**options: Any) -> Any:
    seen: list[str] = []

    def validate(entry: str) -> Prompt | None:
        seen.append(entry)
        return None

    def flow(caller: Caller) -> object:
        try:
            return caller.ask(Prompt.ENTER_CARD_NUMBER, check=validate, **options)
        except NoValidInput as exc:
            return exc

    flow.seen = seen  # type: ignore[attr-defined]
    return flow


@pytest.mark.parametrize("letter", "ABCD")
async def test_a_letter_key_makes_an_invalid_entry(line: Line, letter: str) -> None:
    """A card number keyed with a letter key plays invalid-key and is asked again; the
    entry never reaches the validator or the flow."""
    flow = _ask(min_len=8, max_len=9)
    transcript = await line.call(flow, [f"{letter}1234567#", "12345678#"])
    assert line.results == ["12345678"]
    assert transcript.heard == ["enter-card-number", "invalid-key", *LEFT_2, "enter-card-number"]
    assert flow.seen == ["12345678"]


async def test_letters_anywhere_count_tries(line: Line) -> None:
    """Letters at the end or in the middle, of the right length or not, each use a try."""
    flow = _ask(min_len=8, max_len=9)
    transcript = await line.call(flow, ["1234567D#", "1234A5678#", "12345678C"])
    assert isinstance(line.results[0], NoValidInput)
    assert transcript.heard == [
        "enter-card-number",
        "invalid-key",
        *LEFT_2,
        "enter-card-number",
        "invalid-key",
        "tries-left",
        "count-1",
        "times",
        "enter-card-number",
    ]
    assert flow.seen == []


async def test_letters_in_an_id_number_where_star_is_x(line: Line) -> None:
    """In an ID number only `*` stands for X: a letter key is an invalid entry."""
    flow = _ask(min_len=18, max_len=18, star_is_x=True)
    await line.call(flow, ["11010519491231002A#", "11010519491231002*#"])
    assert line.results == ["11010519491231002X"]
    assert flow.seen == ["11010519491231002X"]


async def test_secret_entry_with_a_letter(line: Line) -> None:
    """A PIN keyed with a letter is re-asked like a PIN of the wrong length."""
    transcript = await line.call(
        lambda c: c.ask(Prompt.ENTER_PIN, min_len=6, max_len=6, secret=True), ["12B456#", "864213#"]
    )
    assert line.results == ["864213"]
    assert transcript.heard == ["enter-pin", "invalid-key", *LEFT_2, "enter-pin"]


async def test_card_number_with_a_letter_in_the_real_flow(phone: Phone, issue: Any) -> None:
    """Over the real flows: a caller keying the card's letter with the A key hears
    invalid-key and goes on to change the PIN, not a system error and a hang-up."""
    card: IssuedCard = await issue()
    keys = ["2", f"A{card.digits}#", f"{card.digits}#", "123456#", id_keys(card.id_number)]
    transcript = await phone.call("main", keys)
    assert "system-error" not in transcript.heard
    heard = transcript.heard
    start = heard.index("enter-card-number")
    assert heard[start : start + 5] == [
        "enter-card-number",
        "invalid-key",
        *LEFT_2,
    ]
    assert "enter-id-number" in heard
