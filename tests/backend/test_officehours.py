"""Office hours: weekday sessions in Shanghai, holidays off, make-up days on, next opening."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import structlog

from backend.officehours import OfficeHours, add_working_days, is_workday
from backend.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = OfficeHours(((dt.time(9, 0), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 0))), SHANGHAI)


def at(text: str) -> dt.datetime:
    """A Shanghai wall-clock time, e.g. '2026-09-15 10:00'."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "moment",
    [
        "2026-09-15 09:00",  # Tuesday, the morning session starts
        "2026-09-15 11:59",
        "2026-09-15 13:30",  # the afternoon session starts
        "2026-09-15 16:59",
        "2026-09-20 10:00",  # Sunday, a make-up working day
        "2026-10-10 14:00",  # Saturday, a make-up working day
    ],
)
def test_open(moment: str) -> None:
    """Agents answer inside a session on a working day, make-up days included."""
    assert HOURS.is_open(at(moment))


@pytest.mark.parametrize(
    "moment",
    [
        "2026-09-15 08:59",  # before the morning
        "2026-09-15 12:00",  # lunch starts: sessions end exclusively
        "2026-09-15 13:00",  # lunch
        "2026-09-15 17:00",  # evening
        "2026-09-15 22:00",
        "2026-09-19 10:00",  # Saturday
        "2026-09-27 10:00",  # Sunday
        "2026-10-01 10:00",  # National Day, a Thursday
        "2026-10-05 10:00",  # Monday inside the National Day holiday
        "2026-09-25 10:00",  # Mid-Autumn Festival, a Friday
    ],
)
def test_closed(moment: str) -> None:
    """Outside the sessions, at weekends and on public holidays nobody answers."""
    assert not HOURS.is_open(at(moment))


def test_working_days_from_the_calendar() -> None:
    """The 2026 calendar: holidays are off, make-up weekend days are on."""
    assert not is_workday(dt.date(2026, 10, 1))
    assert is_workday(dt.date(2026, 9, 20))
    assert is_workday(dt.date(2026, 10, 10))
    assert not is_workday(dt.date(2026, 9, 19))
    assert is_workday(dt.date(2026, 9, 15))


@pytest.mark.parametrize(
    ("moment", "opening"),
    [
        ("2026-09-15 10:00", "2026-09-15 10:00"),  # open now: now
        ("2026-09-15 07:30", "2026-09-15 09:00"),
        ("2026-09-15 12:30", "2026-09-15 13:30"),
        ("2026-09-15 18:00", "2026-09-16 09:00"),
        ("2026-09-18 17:30", "2026-09-20 09:00"),  # Friday evening: the make-up Sunday
        ("2026-09-24 17:30", "2026-09-28 09:00"),  # across the Mid-Autumn long weekend
        ("2026-09-30 17:00", "2026-10-08 09:00"),  # across National Day week
        ("2026-10-01 10:00", "2026-10-08 09:00"),
        ("2026-10-09 18:00", "2026-10-10 09:00"),  # Friday evening: the make-up Saturday
    ],
)
def test_next_opening(moment: str, opening: str) -> None:
    """The next moment agents answer, across lunch, nights, weekends and holidays."""
    got = HOURS.next_opening(at(moment))
    assert got == at(opening)
    assert got.utcoffset() == dt.timedelta(hours=8)


def test_utc_times_are_converted_to_shanghai() -> None:
    """A UTC moment is judged by Shanghai's clock, eight hours ahead."""
    utc = dt.UTC
    assert HOURS.is_open(dt.datetime(2026, 9, 15, 2, 0, tzinfo=utc))  # 10:00 Shanghai
    assert not HOURS.is_open(dt.datetime(2026, 9, 15, 0, 30, tzinfo=utc))  # 08:30
    assert not HOURS.is_open(dt.datetime(2026, 9, 15, 10, 0, tzinfo=utc))  # 18:00
    # Friday 23:00 UTC is Saturday 07:00 in Shanghai: a weekend, whatever UTC's weekday.
    assert not HOURS.is_open(dt.datetime(2026, 9, 18, 23, 0, tzinfo=utc))
    # Saturday 22:00 UTC is the make-up Sunday 06:00 in Shanghai; it opens at 09:00.
    opening = HOURS.next_opening(dt.datetime(2026, 9, 19, 22, 0, tzinfo=utc))
    assert opening == at("2026-09-20 09:00")
    assert opening == dt.datetime(2026, 9, 20, 1, 0, tzinfo=utc)
    assert HOURS.local(dt.datetime(2026, 9, 15, 2, 0, tzinfo=utc)) == at("2026-09-15 10:00")


def test_naive_times_are_refused() -> None:
    """A datetime without a time zone is an error, not a guess."""
    with pytest.raises(ValueError, match="aware"):
        HOURS.is_open(dt.datetime(2026, 9, 15, 10, 0))


def test_unknown_year_falls_back_to_weekdays() -> None:
    """A year the holiday calendar does not know counts Monday to Friday, with a warning."""
    with structlog.testing.capture_logs() as logs:
        assert HOURS.is_open(at("2040-01-02 10:00"))  # a Monday
        assert not HOURS.is_open(at("2040-01-08 10:00"))  # a Sunday
        assert HOURS.next_opening(at("2040-01-07 10:00")) == at("2040-01-09 09:00")  # Sat
        assert is_workday(dt.date(2040, 10, 1))  # a Monday; no holiday data
    assert any(e["event"] == "holiday_calendar_unknown_year" for e in logs)


def test_add_working_days() -> None:
    """Counting working days skips holidays and weekends and counts make-up days."""
    assert add_working_days(dt.date(2026, 9, 15), 1) == dt.date(2026, 9, 16)
    assert add_working_days(dt.date(2026, 9, 18), 1) == dt.date(2026, 9, 20)
    assert add_working_days(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)
    assert add_working_days(dt.date(2026, 9, 30), 5) == dt.date(2026, 10, 13)
    assert add_working_days(dt.date(2026, 9, 15), 0) == dt.date(2026, 9, 15)


def test_from_settings() -> None:
    """Office hours are built from the settings' sessions and time zone."""
    settings = Settings(office_hours="08:30-11:30, 14:00-18:00", timezone="Asia/Urumqi")
    hours = OfficeHours.from_settings(settings)
    assert hours.sessions == (
        (dt.time(8, 30), dt.time(11, 30)),
        (dt.time(14, 0), dt.time(18, 0)),
    )
    urumqi = ZoneInfo("Asia/Urumqi")
    assert hours.is_open(dt.datetime(2026, 9, 15, 17, 30, tzinfo=urumqi))
    assert not hours.is_open(dt.datetime(2026, 9, 15, 9, 0, tzinfo=SHANGHAI))  # 07:00 there
