from __future__ import annotations

import datetime as dt

import pytest

from prompts.spoken import cardinal, clock, for_synthesis, quantity, sessions_text, time_range


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "零"), (1, "一"), (2, "二"), (10, "十"), (12, "十二"), (20, "二十"), (45, "四十五")],
)
def test_cardinal(n: int, text: str) -> None:
    assert cardinal(n) == text


def test_cardinal_range() -> None:
    with pytest.raises(ValueError):
        cardinal(100)


def test_quantity_says_liang_for_two() -> None:
    assert quantity(2) == "两"
    assert quantity(12) == "十二"


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (dt.time(9, 0), "九点"),
        (dt.time(12, 0), "十二点"),
        (dt.time(13, 30), "一点三十分"),
        (dt.time(14, 5), "两点零五分"),
        (dt.time(0, 0), "十二点"),
    ],
)
def test_clock(t: dt.time, text: str) -> None:
    assert clock(t) == text


def test_time_range_names_the_end_part_of_day_only_when_it_differs() -> None:
    assert time_range(dt.time(9), dt.time(12)) == "上午九点至十二点"
    assert time_range(dt.time(13, 30), dt.time(17)) == "下午一点三十分至五点"
    assert time_range(dt.time(9), dt.time(17)) == "上午九点至下午五点"
    assert time_range(dt.time(14), dt.time(18)) == "下午两点至六点"
    assert time_range(dt.time(17), dt.time(20)) == "下午五点至晚上八点"
    assert time_range(dt.time(8), dt.time(12, 30)) == "上午八点至中午十二点三十分"


def test_sessions_text() -> None:
    sessions = [(dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(17))]
    assert sessions_text(sessions) == "上午九点至十二点、下午一点三十分至五点"


def test_synthesis_reads_the_hotline_number_key_by_key() -> None:
    assert for_synthesis("欢迎致电12333热线，请按1") == "欢迎致电幺二三三三热线，请按1"
