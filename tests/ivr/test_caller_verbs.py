"""The Caller verbs over the real server and the fake Asterisk on a loopback socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ivr.caller import AgentRequested, Caller, GoBack, NoValidInput
from prompts.catalogue import Piece, Prompt, count, digits_of
from tests.ivr.conftest import Line

MENU = Prompt.CARD_MENU


def left(n: int) -> list[str]:
    """What a caller hears after a failed try: "you can try N more times"."""
    return ["tries-left", f"count-{n}", "times"]


def _menu(caller: Caller) -> str:
    return caller.menu(MENU, "1239*", intro=Prompt.WELCOME)


async def test_menu_returns_a_key(line: Line) -> None:
    """A valid key is returned; the intro plays once before the menu."""
    transcript = await line.call(_menu, ["2"])
    assert line.results == ["2"]
    assert transcript.heard == ["welcome", MENU]
    assert transcript.commands[1] == "GET DATA ivr12333/card-menu 5000 1"


async def test_menu_silence_then_key(line: Line) -> None:
    """Silence plays no-input and the menu again."""
    transcript = await line.call(_menu, ["-", "3"])
    assert line.results == ["3"]
    assert transcript.heard == ["welcome", MENU, "no-input", *left(2), MENU]


async def test_menu_invalid_key_then_key(line: Line) -> None:
    """A key not offered plays invalid-key and the menu again."""
    transcript = await line.call(_menu, ["7", "*"])
    assert line.results == ["*"]
    assert transcript.heard == ["welcome", MENU, "invalid-key", *left(2), MENU]


async def test_menu_hash_alone_is_no_input(line: Line) -> None:
    """`#` alone at a menu counts as no key."""
    transcript = await line.call(_menu, ["#", "1"])
    assert line.results == ["1"]
    assert transcript.heard[2] == "no-input"


async def test_menu_nine_goes_back_to_the_flow(line: Line) -> None:
    """9, when offered, is returned for the flow to repeat itself."""
    await line.call(_menu, ["9"])
    assert line.results == ["9"]


async def test_menu_gives_up_after_three_failures(line: Line) -> None:
    """Three failures raise NoValidInput; the last one plays no retry prompt."""
    transcript = await line.call(lambda c: _catch(lambda: _menu(c)), ["-", "7", "#"])
    assert isinstance(line.results[0], NoValidInput)
    assert transcript.heard == [
        "welcome",
        MENU,
        "no-input",
        *left(2),
        MENU,
        "invalid-key",
        *left(1),
        MENU,
    ]


async def test_menu_zero_asks_for_an_agent(line: Line) -> None:
    """0 raises AgentRequested when offered, and is an invalid key when not."""
    await line.call(lambda c: _catch(lambda: c.menu(MENU, "120")), ["0"])
    assert isinstance(line.results[0], AgentRequested)
    transcript = await line.call(lambda c: c.menu(MENU, "12"), ["0", "1"])
    assert line.results[1] == "1"
    assert transcript.heard == [MENU, "invalid-key", *left(2), MENU]


def _catch(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except (NoValidInput, AgentRequested, GoBack) as exc:
        return exc


def _ask(**options: Any) -> Callable[[Caller], object]:
    def flow(caller: Caller) -> object:
        return _catch(lambda: caller.ask(Prompt.ENTER_CARD_NUMBER, **options))

    return flow


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["12345678#"], "12345678"),
        (["12345678"], "12345678"),  # digits then silence: the caller forgot #
        (["123456789"], "123456789"),  # max_len + 1 digits would be needed to overflow
    ],
)
async def test_ask_accepts(line: Line, keys: list[str], expected: str) -> None:
    """An entry of the right length is returned, ended by # or by silence."""
    await line.call(_ask(min_len=8, max_len=9), keys)
    assert line.results == [expected]


async def test_ask_sends_max_len_plus_one_and_entry_timeout(line: Line) -> None:
    """GET DATA asks for max_len + 1 keys with the between-keys timeout."""
    transcript = await line.call(_ask(min_len=8, max_len=9), ["12345678#"])
    assert transcript.commands == ["GET DATA ivr12333/enter-card-number 6000 10"]


async def test_ask_too_long_or_short_counts_a_try(line: Line) -> None:
    """Wrong lengths play invalid-key and re-ask."""
    transcript = await line.call(
        _ask(min_len=8, max_len=9), ["1234567890123#", "123#", "87654321#"]
    )
    assert line.results == ["87654321"]
    assert transcript.heard == [
        "enter-card-number",
        "invalid-key",
        *left(2),
        "enter-card-number",
        "invalid-key",
        *left(1),
        "enter-card-number",
    ]


async def test_ask_silence_and_hash_alone_play_no_input(line: Line) -> None:
    """An empty entry (silence or # alone) plays no-input."""
    transcript = await line.call(_ask(min_len=1, max_len=4), ["-", "#", "12#"])
    assert line.results == ["12"]
    assert transcript.heard == [
        "enter-card-number",
        "no-input",
        *left(2),
        "enter-card-number",
        "no-input",
        *left(1),
        "enter-card-number",
    ]


@pytest.mark.parametrize("keys", ["*", "12*", "1*2#", "*#"])
async def test_ask_star_goes_back(line: Line, keys: str) -> None:
    """'*' anywhere in an entry means back, as it does at a menu: GoBack, no try used."""
    transcript = await line.call(_ask(min_len=2, max_len=4), [keys])
    assert isinstance(line.results[0], GoBack)
    assert transcript.heard == ["enter-card-number"]


async def test_ask_star_is_x(line: Line) -> None:
    """With star_is_x, '*' is the letter X and validate judges the entry."""
    seen: list[str] = []

    def validate(entry: str) -> Prompt | None:
        seen.append(entry)
        ok = entry.endswith("X") and "X" not in entry[:-1]
        return None if ok else Prompt.ID_NUMBER_INVALID

    transcript = await line.call(
        _ask(min_len=18, max_len=18, star_is_x=True, check=validate),
        ["1101051949123*0021#", "11010519491231002*#"],
    )
    assert line.results == ["11010519491231002X"]
    assert transcript.heard == [
        "enter-card-number",
        "id-number-invalid",
        *left(2),
        "enter-card-number",
    ]
    assert seen[-1] == "11010519491231002X"


async def test_ask_validate_prompt_and_no_valid_input(line: Line) -> None:
    """validate's prompt plays on rejection; the third failure raises NoValidInput."""
    transcript = await line.call(
        _ask(min_len=4, max_len=4, check=lambda e: Prompt.PIN_RULE_COMMON),
        ["1111#", "2222#", "3333#", "4444#"],
    )
    assert isinstance(line.results[0], NoValidInput)
    assert transcript.heard == [
        "enter-card-number",
        "pin-rule-common",
        *left(2),
        "enter-card-number",
        "pin-rule-common",
        *left(1),
        "enter-card-number",
    ]
    assert [keys for _, keys in transcript.keys] == ["1111#", "2222#", "3333#"]


async def test_ask_secret_entry_never_in_the_exception(line: Line) -> None:
    """A secret entry's keys appear in no exception text."""
    await line.call(
        _ask(min_len=6, max_len=6, secret=True, check=lambda e: Prompt.PIN_RULE_COMMON),
        ["864213#"] * 3,
    )
    assert "864213" not in repr(line.results[0])


async def test_say_digits_with_x(line: Line) -> None:
    """say_digits reads digits and X key by key; anything else is refused, not skipped."""
    transcript = await line.call(lambda c: c.say_digits("109x"), [])
    assert transcript.heard == ["digit-1", "digit-0", "digit-9", "letter-x"]
    with pytest.raises(ValueError):
        digits_of("1-2")


async def test_say_count(line: Line) -> None:
    """say_count plays count-N; zero is refused."""
    transcript = await line.call(lambda c: c.say_count(3), [])
    assert transcript.heard == ["count-3"]
    with pytest.raises(ValueError, match="count"):
        count(0)


async def test_say_tries_left(line: Line) -> None:
    """ "You can try N more times" in three pieces."""
    transcript = await line.call(lambda c: c.say_tries_left(2), [])
    assert transcript.heard == left(2)


async def test_choose_after(line: Line) -> None:
    """choose_after returns an offered key, or None on silence or another key."""
    for keys, expected in ((["9"], "9"), (["-"], None), (["5"], None)):
        line.results.clear()
        transcript = await line.call(
            lambda c: c.choose_after(Prompt.LOSS_REFERENCE_REPEAT, "9"), keys
        )
        assert line.results == [expected]
        assert transcript.commands == ["GET DATA ivr12333/loss-reference-repeat 5000 1"]


async def test_missing_prompt_is_skipped(line: Line) -> None:
    """A missing sound file is logged and skipped; the call goes on."""
    transcript = await line.call(
        lambda c: c.play(Prompt.WELCOME, Piece("no-such-prompt"), Prompt.GOODBYE),
        [],
        available_sounds={"welcome", "goodbye"},
    )
    assert transcript.heard == ["welcome", "goodbye"]
    assert transcript.missing == ["no-such-prompt"]
    assert transcript.ended == "agi-returned"


async def test_missing_menu_prompt_counts_as_silence(line: Line) -> None:
    """A missing menu prompt collects nothing: no-input, then the flow's fallback."""
    transcript = await line.call(
        lambda c: _catch(lambda: c.menu(MENU, "12")), [], available_sounds={Prompt.NO_INPUT}
    )
    assert isinstance(line.results[0], NoValidInput)
    assert transcript.missing.count(MENU) == 3


async def test_set_variable_is_sanitised(line: Line) -> None:
    """Quotes, backslashes and control characters are removed; values are cut short."""
    transcript = await line.call(lambda c: c.set_variable("IVR_NOTE", 'a"b\\c\nd' + "x" * 500), [])
    assert transcript.variables["IVR_NOTE"] == "abcd" + "x" * 252
    with pytest.raises(ValueError, match="variable"):
        Caller.set_variable(None, "BAD NAME", "x")  # type: ignore[arg-type]


async def test_hangup(line: Line) -> None:
    """hangup() ends the channel; later verbs raise CallerHungUp, a normal end."""

    def flow(caller: Caller) -> None:
        caller.hangup()
        caller.play(Prompt.GOODBYE)

    transcript = await line.call(flow, [])
    assert transcript.ended == "server-hangup"
    assert transcript.heard == []
    assert type(line.results[0]).__name__ == "CallerHungUp"


async def test_call_info(line: Line) -> None:
    """CallInfo carries the unique id, caller number, script and channel."""
    await line.call(lambda c: c.info, [], caller_number="13912345678")
    info = line.results[0]
    assert info.caller_number == "13912345678"
    assert info.script.startswith("t")
    assert info.call_id.startswith("1712000000.")
    assert info.channel.startswith("PJSIP/")
