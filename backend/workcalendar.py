"""Which days are working days in China: the one source for the app and the dialplan.

The `chinese_calendar` package knows the years up to its release; the State Council
announces each next year's public holidays and make-up working days in the autumn. An
operator covers a year the package does not know (or corrects one it does) with a file
`YYYY.toml` in the calendar folder (setting `calendar_dir`); a file replaces the package
for its whole year. A year known to neither counts Monday to Friday.

File format (see `calendar/2026.toml.example`)::

    source = "国务院办公厅关于2027年部分节假日安排的通知"   # optional
    [holidays]                       # days off, weekends inside a holiday included
    "2027-01-01" = "元旦"
    "2027-02-06..2027-02-13" = "春节"  # an inclusive range
    [workdays]                       # make-up working days, always on a weekend
    "2027-02-14" = "春节调休"
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import chinese_calendar
import structlog

log = structlog.get_logger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})\.toml$")
# A folder re-read at most this often, so a file added in the autumn is seen without a
# restart while a busy server does not list the folder on every call.
RECHECK_SECONDS = 60.0


class CalendarFileError(ValueError):
    """A calendar file that cannot be trusted; the message names the file and the problem."""


@dataclass(frozen=True)
class YearFile:
    """One year's public holidays and make-up working days, from an operator's file."""

    year: int
    path: Path
    holidays: Mapping[dt.date, str]
    workdays: Mapping[dt.date, str]
    source: str = ""


def _parse_days(path: Path, year: int, table: object, section: str) -> dict[dt.date, str]:
    if not isinstance(table, dict):
        raise CalendarFileError(f"{path}: [{section}] must be a table of dates = names")
    out: dict[dt.date, str] = {}
    for key, name in table.items():
        if not isinstance(name, str) or not name.strip():
            raise CalendarFileError(f"{path}: [{section}] {key}: the name must be a text")
        first_s, dots, last_s = key.partition("..")
        try:
            first = dt.date.fromisoformat(first_s.strip())
            last = dt.date.fromisoformat(last_s.strip()) if dots else first
        except ValueError:
            raise CalendarFileError(
                f"{path}: [{section}] {key!r} is not a date YYYY-MM-DD or a range "
                "YYYY-MM-DD..YYYY-MM-DD"
            ) from None
        if last < first:
            raise CalendarFileError(f"{path}: [{section}] {key}: the range ends before it starts")
        if first.year != year or last.year != year:
            raise CalendarFileError(f"{path}: [{section}] {key} is not in {year}")
        day = first
        while day <= last:
            if day in out:
                raise CalendarFileError(f"{path}: [{section}] {day} is listed twice")
            out[day] = name.strip()
            day += dt.timedelta(days=1)
    return out


def load_year_file(path: Path) -> YearFile:
    """Read and check one `YYYY.toml` (raises CalendarFileError)."""
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise CalendarFileError(f"{path}: a calendar file is named after its year, e.g. 2027.toml")
    year = int(match.group(1))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarFileError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CalendarFileError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"year", "source", "holidays", "workdays"})
    if unknown:
        raise CalendarFileError(f"{path}: unknown entries {', '.join(unknown)}")
    if "year" in data and data["year"] != year:
        raise CalendarFileError(f"{path}: says year {data['year']!r} but is named {year}")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise CalendarFileError(f"{path}: source must be a text")
    holidays = _parse_days(path, year, data.get("holidays", {}), "holidays")
    workdays = _parse_days(path, year, data.get("workdays", {}), "workdays")
    if not holidays:
        # Every year has at least New Year's Day; an empty list is a mistake, not a fact.
        raise CalendarFileError(f"{path}: lists no holidays")
    both = sorted(set(holidays) & set(workdays))
    if both:
        raise CalendarFileError(
            f"{path}: {', '.join(map(str, both))} both a holiday and a make-up working day"
        )
    weekdays = sorted(d for d in workdays if d.weekday() < 5)
    if weekdays:
        raise CalendarFileError(
            f"{path}: make-up working days fall on weekends; "
            f"{', '.join(f'{d} ({d:%A})' for d in weekdays)} is a weekday"
        )
    return YearFile(year, path, holidays, workdays, source)


def _package_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
        chinese_calendar.is_workday(dt.date(year, 12, 31))
    except NotImplementedError:
        return False
    return True


def package_years() -> tuple[int, ...]:
    """The years the installed `chinese_calendar` knows."""
    from chinese_calendar import constants

    years = {d.year for d in constants.holidays}
    return tuple(y for y in range(min(years), max(years) + 1) if _package_knows(y))


def package_name() -> str:
    return f"chinese_calendar {getattr(chinese_calendar, '__version__', '')}".strip()


Source = Literal["file", "package", "none"]


@dataclass(frozen=True)
class WorkCalendar:
    """Operator files over the package; `errors` holds the files left out (when not strict)."""

    files: Mapping[int, YearFile] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @classmethod
    def load(cls, folder: Path, *, strict: bool = True) -> WorkCalendar:
        """Every `*.toml` in `folder` (missing: none). Strict raises on the first bad file;
        otherwise a bad file is left out (and named in `errors`)."""
        files: dict[int, YearFile] = {}
        errors: list[str] = []
        paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
        for path in paths:
            try:
                found = load_year_file(path)
            except CalendarFileError as exc:
                if strict:
                    raise
                errors.append(str(exc))
                continue
            files[found.year] = found
        return cls(files, tuple(errors))

    def source(self, year: int) -> Source:
        if year in self.files:
            return "file"
        return "package" if _package_knows(year) else "none"

    def is_workday(self, day: dt.date) -> bool | None:
        """Whether `day` is a working day, or None when no source knows its year."""
        found = self.files.get(day.year)
        if found is not None:
            if day in found.holidays:
                return False
            return day in found.workdays or day.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return None

    def covered_years(self, around: Iterable[int] = ()) -> dict[int, Source]:
        """Every year covered, by package or file (plus `around`, covered or not)."""
        years = set(package_years()) | set(self.files) | set(around)
        return {y: self.source(y) for y in sorted(years)}


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return ()
    out = []
    for entry in entries:
        if entry.name.endswith(".toml"):
            try:
                st = entry.stat()
            except OSError:
                continue
            out.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


_cache: dict[Path, tuple[float, tuple[tuple[str, int, int], ...], WorkCalendar]] = {}
_cache_lock = threading.Lock()


def calendar_for(folder: Path) -> WorkCalendar:
    """The calendar of `folder` for a running service: lenient, re-read when files change."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(folder)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            return cached[2]
        signature = _signature(folder)
        if cached is not None and cached[1] == signature:
            _cache[folder] = (now, signature, cached[2])
            return cached[2]
        # Calls go on with what is known; `ivr12333 hours check` and the install refuse it.
        calendar = WorkCalendar.load(folder, strict=False)
        for problem in calendar.errors:
            log.error("holiday_calendar_file_invalid", problem=problem)
        _cache[folder] = (now, signature, calendar)
        return calendar
