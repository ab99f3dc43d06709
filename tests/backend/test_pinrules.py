"""New-PIN rules: each reason code, their order, and a property over all accepted PINs."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend import idnumber
from backend.pinrules import COMMON_PINS, INITIAL_PIN, PinRule, birth_date_forms, broken_rule
from backend.services.change_pin import new_pin_problem

BORN = dt.date(1985, 7, 14)
# Born 1985-07-14; its last six characters are all digits.
HOLDER = "44030519850714" + "381"
HOLDER += idnumber.check_char(HOLDER)
CARD = "A29475318"
GOOD_PIN = "583920"


def _rule(pin: str, old: str | None = None) -> PinRule | None:
    return broken_rule(
        pin, old_pin=old, birth_date=BORN, id_number=HOLDER, card_number=CARD.lstrip("A")
    )


def test_holder_fixture_is_sound() -> None:
    """The holder used here validates and its ID ends in six digits."""
    assert idnumber.is_valid(HOLDER)
    assert HOLDER[-6:].isdigit()
    assert broken_rule(HOLDER[-6:]) is None
    assert broken_rule(CARD[-6:]) is None


def test_a_good_pin_passes() -> None:
    """A PIN unrelated to the holder, card and old PIN breaks no rule."""
    assert _rule(GOOD_PIN, old="402913") is None


@pytest.mark.parametrize(
    "pin", ["", "12345", "1234567", "58392", "5839201", "58a920", "５８３９２０"]
)
def test_length_and_digits(pin: str) -> None:
    """Anything but exactly six ASCII digits breaks the length rule."""
    assert _rule(pin) is PinRule.LENGTH


def test_initial_pin() -> None:
    """The initial PIN 123456 may not be chosen (before it counts as a run)."""
    assert INITIAL_PIN == "123456"
    assert _rule("123456") is PinRule.INITIAL


@pytest.mark.parametrize("pin", ["000000", "111111", "999999"])
def test_repeated_digit(pin: str) -> None:
    """One digit six times is refused."""
    assert _rule(pin) is PinRule.REPEATED


@pytest.mark.parametrize(
    "pin", ["234567", "012345", "456789", "987654", "543210", "890123", "789012", "210987"]
)
def test_runs_up_and_down_including_wrap_around(pin: str) -> None:
    """Ascending and descending runs are refused; runs wrap from 9 to 0 and from 0 to 9."""
    assert _rule(pin) is PinRule.SEQUENCE


@pytest.mark.parametrize(
    "pin", ["123457", "012346", "023456", "124456", "123450", "987604", "765431", "901235"]
)
def test_near_runs(pin: str) -> None:
    """A run with one digit changed, anywhere, up or down, is a near-sequence."""
    assert _rule(pin) is PinRule.NEAR_SEQUENCE


@pytest.mark.parametrize("pin", ["135791", "246802", "124457", "123465", "132456", "583920"])
def test_not_near_runs(pin: str) -> None:
    """Step-2 runs, two digits changed and swapped neighbours are no near-sequence."""
    assert _rule(pin) is None


@pytest.mark.parametrize(
    "pin",
    [
        "147258",  # two columns
        "258369",
        "369258",
        "159357",  # both diagonals
        "159753",
        "789456",  # rows, bottom up
        "456123",
        "123789",
        "321987",
        "258580",  # the middle column runs on to 0
        "085852",
        "147741",  # a line and back
        "123123",
        "123321",
    ],
)
def test_keypad_patterns(pin: str) -> None:
    """Two straight three-key lines of the phone keypad, either way, are refused."""
    assert _rule(pin) is PinRule.KEYPAD


@pytest.mark.parametrize("pin", ["145236", "124578", "102938", "147896", "147025", "159486"])
def test_keypad_shapes_that_are_not_two_lines(pin: str) -> None:
    """Zigzags, squares, corners and one line with other keys are not keypad patterns."""
    assert _rule(pin) is None


@pytest.mark.parametrize("pin", ["112233", "121212", "520520", "520131"])
def test_common_pins(pin: str) -> None:
    """The published most-common six-digit PINs no other rule catches are refused."""
    assert _rule(pin) is PinRule.COMMON


def test_every_common_pin_is_refused() -> None:
    """Each listed common PIN is refused, by whichever rule comes first."""
    assert len(COMMON_PINS) == 14
    assert all(broken_rule(pin) is not None for pin in COMMON_PINS)


def test_same_as_old() -> None:
    """The new PIN may not equal the old one."""
    assert _rule(GOOD_PIN, old=GOOD_PIN) is PinRule.SAME_AS_OLD


@pytest.mark.parametrize(
    ("form", "pin"),
    [("yymmdd", "850714"), ("ddmmyy", "140785"), ("mmddyy", "071485"), ("yyyymm", "198507")],
)
def test_birth_date_forms(form: str, pin: str) -> None:
    """The holder's birth date in its common six-digit spellings is refused."""
    assert pin in birth_date_forms(BORN), form
    assert _rule(pin) is PinRule.BIRTH_DATE


def test_birth_date_from_the_id_number() -> None:
    """Through change_pin's check, the birth date comes from the ID number itself."""
    problem = new_pin_problem("850714", old_pin=GOOD_PIN, id_number=HOLDER, card_digits="29475318")
    assert problem is PinRule.BIRTH_DATE


def test_someone_elses_birth_date_is_fine() -> None:
    """A date form of another day is not refused for this holder."""
    assert _rule("850715") is None


def test_id_suffix() -> None:
    """The last six characters of the holder's ID are refused."""
    assert _rule(HOLDER[-6:]) is PinRule.ID_SUFFIX


def test_id_suffix_with_lower_case_x_id() -> None:
    """An ID ending in X can never be a PIN suffix; its digits before the X are fine."""
    with_x = "11010519491231002X"
    assert broken_rule("231002", birth_date=dt.date(1949, 12, 31), id_number=with_x.lower()) is None


def test_card_suffix() -> None:
    """The last six digits of the card number are refused."""
    assert _rule(CARD[-6:]) is PinRule.CARD_SUFFIX


def test_change_pin_check_uses_card_digits() -> None:
    """change_pin's rule check sees the card suffix through the keyed digits."""
    problem = new_pin_problem(
        CARD[-6:], old_pin=GOOD_PIN, id_number=HOLDER, card_digits=CARD.lstrip("A")
    )
    assert problem is PinRule.CARD_SUFFIX


def test_first_broken_rule_is_reported() -> None:
    """A PIN breaking several rules gets the earliest rule's code."""
    assert _rule("123456", old="123456") is PinRule.INITIAL
    assert _rule("111111", old="111111") is PinRule.REPEATED
    assert _rule("234567", old="234567") is PinRule.SEQUENCE


DIGITS6 = st.text(alphabet="0123456789", min_size=6, max_size=6)


# Every six-digit run, ascending or descending, wrapping between 9 and 0.
RUNS = {("0123456789" * 2)[i : i + 6] for i in range(10)} | {
    ("9876543210" * 2)[i : i + 6] for i in range(10)
}


# The phone keypad by (row, column); 0 sits under 8.
KEY_AT = {str(d): divmod(d - 1, 3) for d in range(1, 10)} | {"0": (3, 1)}


def _is_line(keys: str) -> bool:
    """Three keys in a straight line, each a neighbour of the one before."""
    (r0, c0), (r1, c1), (r2, c2) = (KEY_AT[k] for k in keys)
    step = (r1 - r0, c1 - c0)
    return step != (0, 0) and max(map(abs, step)) == 1 and (r2 - r1, c2 - c1) == step


def _near_a_run(pin: str) -> bool:
    return any(sum(a != b for a, b in zip(pin, run, strict=True)) == 1 for run in RUNS)


def test_rejection_fractions_over_every_pin() -> None:
    """Over all 10**6 PINs, with no holder data, each rule refuses few: 99.86 % pass."""
    counts: dict[PinRule | None, int] = {}
    for n in range(10**6):
        rule = broken_rule(f"{n:06d}")
        counts[rule] = counts.get(rule, 0) + 1
    assert counts == {
        None: 998_566,
        PinRule.INITIAL: 1,
        PinRule.REPEATED: 10,
        PinRule.SEQUENCE: 19,
        PinRule.NEAR_SEQUENCE: 1_080,
        PinRule.KEYPAD: 320,
        PinRule.COMMON: 4,
    }


@given(pin=DIGITS6)
def test_pattern_rules_match_the_keypad_geometry(pin: str) -> None:
    """The keypad and near-run rules agree with definitions from the keypad's geometry and
    from counting changed digits, for any six digits."""
    keypad = _is_line(pin[:3]) and _is_line(pin[3:])
    rule = broken_rule(pin)
    if rule in (None, PinRule.KEYPAD, PinRule.COMMON):
        assert (rule is PinRule.KEYPAD) == keypad
    if rule in (None, PinRule.NEAR_SEQUENCE):
        assert (rule is PinRule.NEAR_SEQUENCE) == _near_a_run(pin)


@pytest.mark.parametrize("pin", sorted(RUNS))
def test_every_neighbour_of_a_run_is_refused(pin: str) -> None:
    """All 54 one-digit changes of each run are refused."""
    for i in range(6):
        for d in "0123456789":
            assert broken_rule(pin[:i] + d + pin[i + 1 :]) is not None


@given(
    pin=st.one_of(DIGITS6, st.text(max_size=8)),
    old=st.one_of(st.none(), DIGITS6),
    born=st.dates(min_value=dt.date(1920, 1, 1), max_value=dt.date(2010, 12, 31)),
    serial=st.text(alphabet="0123456789", min_size=3, max_size=3),
    card=st.text(alphabet="0123456789", min_size=8, max_size=9),
)
def test_accepted_pins_break_nothing(
    pin: str, old: str | None, born: dt.date, serial: str, card: str
) -> None:
    """Whatever the rules accept is six ASCII digits and none of the forbidden forms."""
    holder = f"310104{born:%Y%m%d}{serial}"
    holder += idnumber.check_char(holder)
    if broken_rule(pin, old_pin=old, birth_date=born, id_number=holder, card_number=card):
        return
    assert len(pin) == 6 and all(ch in "0123456789" for ch in pin)
    assert pin != "123456"
    assert len(set(pin)) > 1
    assert pin not in RUNS
    assert not _near_a_run(pin)
    assert not (_is_line(pin[:3]) and _is_line(pin[3:]))
    assert pin not in COMMON_PINS
    assert pin != old
    y4, m, d = f"{born.year:04d}", f"{born.month:02d}", f"{born.day:02d}"
    assert pin not in {y4[2:] + m + d, d + m + y4[2:], m + d + y4[2:], y4 + m}
    assert pin != holder[-6:]
    assert pin != card[-6:]
