"""When agents answer: weekday sessions in Asia/Shanghai, with China's public holidays off
and make-up working days on, from `backend.workcalendar` (the `chinese_calendar` package and
the operator's year files)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import structlog

from backend.settings import Settings, get_settings
from backend.workcalendar import WorkCalendar, calendar_for

log = structlog.get_logger(__name__)


def current_time() -> dt.datetime:
    """Now, or the moment a dev or test set-up pretends it is."""
    return get_settings().now_override or dt.datetime.now(dt.UTC)


def is_workday(day: dt.date, calendar: WorkCalendar | None = None) -> bool:
    """A working day in China (by default from the settings' calendar folder); years no
    source knows fall back to Mon-Fri."""
    if calendar is None:
        calendar = calendar_for(get_settings().calendar_dir)
    known = calendar.is_workday(day)
    if known is None:
        log.warning("holiday_calendar_unknown_year", year=day.year)
        return day.weekday() < 5
    return known


def add_working_days(start: dt.date, count: int, calendar: WorkCalendar | None = None) -> dt.date:
    """The date `count` working days after `start` (start itself not counted)."""
    day = start
    left = count
    while left > 0:
        day += dt.timedelta(days=1)
        if is_workday(day, calendar):
            left -= 1
    return day


@dataclass(frozen=True)
class OfficeHours:
    sessions: tuple[tuple[dt.time, dt.time], ...]
    tz: ZoneInfo
    # None: the settings' calendar folder, looked up at each question.
    calendar: WorkCalendar | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> OfficeHours:
        s = settings or get_settings()
        return cls(tuple(s.office_sessions), ZoneInfo(s.timezone))

    def local(self, at: dt.datetime) -> dt.datetime:
        if at.tzinfo is None:
            raise ValueError("office hours need an aware datetime")
        return at.astimezone(self.tz)

    def is_open(self, at: dt.datetime) -> bool:
        here = self.local(at)
        if not is_workday(here.date(), self.calendar):
            return False
        now = here.time()
        return any(start <= now < end for start, end in self.sessions)

    def next_opening(self, at: dt.datetime) -> dt.datetime:
        """The next moment agents answer (``at`` itself when open)."""
        here = self.local(at)
        if self.is_open(here):
            return here
        day = here.date()
        for _ in range(60):  # the longest Chinese holiday is far shorter
            if is_workday(day, self.calendar):
                for start, _end in self.sessions:
                    opening = dt.datetime.combine(day, start, tzinfo=self.tz)
                    if opening > here:
                        return opening
            day += dt.timedelta(days=1)
        raise RuntimeError("no office session within 60 days")
