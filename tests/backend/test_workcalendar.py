"""The holiday calendar's one source: the package, the operator's year files over it, the app
and the dialplan's include agreeing on them, and `ivr12333 hours check`."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from backend import workcalendar
from backend.officehours import OfficeHours, add_working_days, is_workday
from backend.settings import Settings, reset_settings
from backend.workcalendar import CalendarFileError, WorkCalendar, calendar_for, load_year_file
from dialplan import hours
from dialplan.render import Setup, render
from tests.conftest import ROOT

EXAMPLE = ROOT / "calendar" / "2026.toml.example"
IVR12333 = ROOT / ".venv" / "bin" / "ivr12333"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SESSIONS = ((dt.time(9, 0), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 0)))

# A made-up year far enough ahead that no release of the package knows it, with a holiday
# across a weekend and make-up Saturday/Sunday, as the State Council's notices have them.
SYNTHETIC_2031 = """\
source = "a test year, not an official schedule"
[holidays]
"2031-01-01" = "元旦"
"2031-01-22..2031-01-28" = "春节"
"2031-10-01..2031-10-07" = "国庆节"
[workdays]
"2031-01-19" = "春节调休"
"2031-02-08" = "春节调休"
"2031-09-28" = "国庆节调休"
"""


def write(folder: Path, name: str, text: str) -> Path:
    """Write one calendar file and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def days_of(year: int) -> Iterator[dt.date]:
    """Every day of `year`."""
    day = dt.date(year, 1, 1)
    while day.year == year:
        yield day
        day += dt.timedelta(days=1)


def test_example_file_matches_the_package(tmp_path: Path) -> None:
    """The shipped example, loaded as 2026.toml, says the same as the package on all 365 days
    of 2026: the format expresses a real year exactly (33 days off, 6 make-up workdays)."""
    shutil.copy(EXAMPLE, tmp_path / "2026.toml")
    calendar = WorkCalendar.load(tmp_path)
    assert calendar.source(2026) == "file"
    found = calendar.files[2026]
    assert (len(found.holidays), len(found.workdays)) == (33, 6)
    differing = [
        d for d in days_of(2026) if calendar.is_workday(d) != chinese_calendar.is_workday(d)
    ]
    assert differing == []


def test_example_is_not_loaded() -> None:
    """The example in the project's calendar folder is not a year file and is never loaded."""
    assert not list((ROOT / "calendar").glob("*.toml"))
    assert 2026 not in WorkCalendar.load(ROOT / "calendar").files


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("2031.toml", '[holidays]\n"2030-12-31" = "x"\n', "not in 2031"),
        ("2031.toml", '[holidays]\n"2031-12-30..2032-01-02" = "x"\n', "not in 2031"),
        (
            "2031.toml",
            '[holidays]\n"2031-01-01" = "x"\n[workdays]\n"2031-01-01" = "y"\n',
            "both a holiday and a make-up working day",
        ),
        (
            "2031.toml",
            '[holidays]\n"2031-01-01" = "x"\n[workdays]\n"2031-01-06" = "y"\n',
            "2031-01-06 (Monday) is a weekday",
        ),
        ("2031.toml", '[holidays]\n"2031-02-30" = "x"\n', "is not a date"),
        ("2031.toml", '[holidays]\n"1 Jan" = "x"\n', "is not a date"),
        ("2031.toml", '[holidays]\n"2031-01-05..2031-01-01" = "x"\n', "ends before"),
        (
            "2031.toml",
            '[holidays]\n"2031-01-01..2031-01-03" = "x"\n"2031-01-03" = "y"\n',
            "listed twice",
        ),
        ("2031.toml", '[holidays]\n"2031-01-01" = ""\n', "name must be a text"),
        ("2031.toml", '[holidays]\n"2031-01-01" = 1\n', "name must be a text"),
        ("2031.toml", '[workdays]\n"2031-01-04" = "x"\n', "lists no holidays"),
        ("2031.toml", 'year = 2032\n[holidays]\n"2031-01-01" = "x"\n', "says year 2032"),
        ("2031.toml", '[holiday]\n"2031-01-01" = "x"\n', "unknown entries holiday"),
        ("2031.toml", "holidays = 3\n", "must be a table"),
        ("2031.toml", '[holidays\n"2031-01-01" = "x"\n', "not valid TOML"),
        ("calendar-2031.toml", '[holidays]\n"2031-01-01" = "x"\n', "named after its year"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, name: str, text: str, problem: str) -> None:
    """Every kind of mistake in a year file is refused with the file and the problem named;
    a strict load refuses the folder, a lenient one leaves the file out and says why."""
    path = write(tmp_path, name, text)
    with pytest.raises(CalendarFileError, match=re.escape(problem)) as caught:
        load_year_file(path)
    assert str(path) in str(caught.value)
    with pytest.raises(CalendarFileError):
        WorkCalendar.load(tmp_path)
    lenient = WorkCalendar.load(tmp_path, strict=False)
    assert lenient.files == {}
    assert len(lenient.errors) == 1 and problem in lenient.errors[0]


def test_unknown_year_is_the_bug_a_file_fixes(tmp_path: Path) -> None:
    """Without a file, 2031's Spring Festival Wednesday counts as a working day and agents
    are expected; with the file it is off, the make-up Sunday is on, and next_opening skips
    the whole holiday."""
    festival = dt.datetime(2031, 1, 22, 10, 0, tzinfo=SHANGHAI)  # a Wednesday
    bare = OfficeHours(SESSIONS, SHANGHAI, WorkCalendar())
    assert bare.is_open(festival)

    write(tmp_path, "2031.toml", SYNTHETIC_2031)
    hours_ = OfficeHours(SESSIONS, SHANGHAI, WorkCalendar.load(tmp_path))
    assert not hours_.is_open(festival)
    assert hours_.is_open(dt.datetime(2031, 1, 19, 10, 0, tzinfo=SHANGHAI))  # make-up Sunday
    assert hours_.next_opening(festival) == dt.datetime(2031, 1, 29, 9, 0, tzinfo=SHANGHAI)
    calendar = WorkCalendar.load(tmp_path)
    assert add_working_days(dt.date(2031, 1, 21), 1, calendar) == dt.date(2031, 1, 29)


def test_a_file_overrides_the_package(tmp_path: Path) -> None:
    """A file for a year the package knows replaces the package for that whole year."""
    write(tmp_path, "2026.toml", '[holidays]\n"2026-09-15" = "a local holiday"\n')
    calendar = WorkCalendar.load(tmp_path)
    assert calendar.source(2026) == "file" and calendar.source(2025) == "package"
    assert calendar.is_workday(dt.date(2026, 9, 15)) is False  # a Tuesday the package works
    assert calendar.is_workday(dt.date(2026, 10, 1)) is True  # not in this file
    assert calendar.is_workday(dt.date(2025, 10, 1)) is False  # other years: the package
    assert calendar.is_workday(dt.date(2040, 1, 2)) is None


def _dialplan_verdicts(include: str) -> tuple[set[int], dict[dt.date, bool]]:
    """The calendar years and exceptional days as the generated include states them."""
    years = re.search(r"calendar years known: ([0-9&]+)\.", include)
    assert years is not None
    calendar = include.split("[ivr-calendar]", 1)[1]
    found = {
        dt.datetime.strptime(day, "%Y%m%d").date(): kind == "workday"
        for day, kind in re.findall(r"^exten => (\d{8}),1,Return\((\w+)\)$", calendar, re.M)
    }
    return {int(y) for y in years.group(1).split("&")}, found


def test_app_and_dialplan_agree_on_a_year_file(tmp_path: Path) -> None:
    """The rendered extensions_hours.conf and the app say the same of all 365 days of a year
    known only from a file (14 exceptional days), and the include names that year as known;
    the next year, known to nobody, is left to Monday-Friday in both."""
    folder = tmp_path / "calendar"
    write(folder, "2031.toml", SYNTHETIC_2031)
    settings = Settings(calendar_dir=folder, office_hours="09:00-12:00,13:30-17:00")
    plan = hours.build_plan(
        settings.office_sessions,
        settings.timezone,
        today=dt.date(2031, 3, 1),
        calendar=WorkCalendar.load(folder),
    )
    clock = int(dt.datetime(2031, 3, 1, 10, 0, tzinfo=SHANGHAI).timestamp())
    files = render(Setup(agi_servers=("127.0.0.1:4573",), clock_epoch=clock), settings)
    assert files["extensions_hours.conf"] == hours.render(plan)
    known, exceptions = _dialplan_verdicts(hours.render(plan))
    assert known == {2031}
    app = WorkCalendar.load(folder)
    disagree = []
    for day in days_of(2031):
        dialplan_says = exceptions.get(day, day.weekday() < 5)
        if dialplan_says != is_workday(day, app):
            disagree.append(day)
    assert disagree == []
    assert len(exceptions) == 14  # 11 weekdays off, 3 make-up weekend days
    assert not any(day.year == 2032 for day in exceptions)


def test_install_refuses_a_bad_file(tmp_path: Path) -> None:
    """Rendering Asterisk's configuration stops on a bad year file instead of dropping its
    holidays from the dialplan."""
    write(tmp_path, "2031.toml", '[holidays]\n"2030-01-01" = "x"\n')
    with pytest.raises(CalendarFileError, match="not in 2031"):
        render(Setup(agi_servers=("127.0.0.1:4573",)), Settings(calendar_dir=tmp_path))


def test_the_app_reads_the_settings_folder_and_sees_new_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the app asks the IVR_CALENDAR_DIR folder; a file added while the service
    runs is seen on the next question after the re-check interval, and a bad file is left
    out so calls go on."""
    monkeypatch.setenv("IVR_CALENDAR_DIR", str(tmp_path))
    monkeypatch.setattr(workcalendar, "RECHECK_SECONDS", 0.0)
    reset_settings()
    try:
        new_year = dt.date(2031, 1, 1)  # a Wednesday
        assert is_workday(new_year)
        write(tmp_path, "2031.toml", SYNTHETIC_2031)
        assert not is_workday(new_year)
        write(tmp_path, "2032.toml", "[holidays\n")
        assert not is_workday(new_year)
        assert calendar_for(tmp_path).errors and 2032 not in calendar_for(tmp_path).files
    finally:
        reset_settings()


def hours_check(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `ivr12333 hours check ARGS` with `folder` as the calendar folder."""
    env = {**os.environ, "IVR_CALENDAR_DIR": str(folder)}
    env.pop("IVR_NOW_OVERRIDE", None)
    return subprocess.run(
        [str(IVR12333), "hours", "check", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hours_check(tmp_path: Path) -> None:
    """`hours check` lists the years and their sources; it passes until 1 October before an
    uncovered year, fails from then on and within the year itself, passes once a file covers
    it, and fails on a bad file."""
    ran = hours_check(tmp_path, "--at", "2026-09-30")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2004-2026: chinese_calendar" in ran.stdout
    assert "Next year 2027: not covered yet (this check fails from 2026-10-01)" in ran.stdout

    ran = hours_check(tmp_path, "--at", "2026-10-01")
    assert ran.returncode == 1
    assert "WARNING: next year 2027 is not covered and starts in 92 days" in ran.stdout

    ran = hours_check(tmp_path, "--at", "2026-12-01", "--warn-days", "20")
    assert ran.returncode == 0, ran.stdout

    ran = hours_check(tmp_path, "--at", "2027-03-01")
    assert ran.returncode == 1
    assert "WARNING: 2027 is not covered" in ran.stdout

    write(tmp_path, "2027.toml", '[holidays]\n"2027-01-01" = "元旦"\n')
    ran = hours_check(tmp_path, "--at", "2026-12-01")
    assert ran.returncode == 0, ran.stdout
    assert "2027: file 2027.toml (1 days off, 0 make-up workdays)" in ran.stdout
    assert "Next year 2027: covered (file)." in ran.stdout

    write(tmp_path, "2028.toml", '[holidays]\n"2027-01-01" = "元旦"\n')
    ran = hours_check(tmp_path, "--at", "2026-12-01")
    assert ran.returncode == 1
    assert "ERROR:" in ran.stdout and "not in 2028" in ran.stdout

    ran = hours_check(tmp_path, "--at", "1 Jan")
    assert ran.returncode == 2 and "not a date" in ran.stderr
