"""`ivr12333 hours check`: which years the holiday calendar covers, and whether the next one
is covered in good time (the State Council announces it in the autumn)."""

from __future__ import annotations

import argparse
import datetime as dt
from zoneinfo import ZoneInfo

# From 1 October: the notice usually comes out in October or November, and the year files
# must be in place (and the dialplan reinstalled) before 1 January.
DEFAULT_WARN_DAYS = 92


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="list the years covered; exit 1 when this year, or next year within "
        "--warn-days of its start, is not covered or a year file is invalid",
    )
    check.add_argument("--at", type=_date, metavar="YYYY-MM-DD", help="judge as of this day")
    check.add_argument(
        "--warn-days",
        type=int,
        default=DEFAULT_WARN_DAYS,
        metavar="N",
        help=f"warn this many days before next year starts (default {DEFAULT_WARN_DAYS}: "
        "from 1 October)",
    )
    check.set_defaults(func=_check)


def _spans(years: list[int]) -> list[str]:
    """[2004, 2005, 2006, 2009] -> ['2004-2006', '2009']."""
    out: list[str] = []
    start = prev = years[0]
    for year in [*years[1:], None]:
        if year is not None and year == prev + 1:
            prev = year
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if year is not None:
            start = prev = year
    return out


def _check(args: argparse.Namespace) -> int:
    from backend.officehours import current_time
    from backend.settings import get_settings
    from backend.workcalendar import WorkCalendar, package_name
    from cli.common import quiet_logging
    from cli.main import CommandError

    quiet_logging()
    settings = get_settings()
    if args.warn_days < 0 or args.warn_days > 366:
        raise CommandError("--warn-days must be between 0 and 366")
    today: dt.date = args.at or current_time().astimezone(ZoneInfo(settings.timezone)).date()
    calendar = WorkCalendar.load(settings.calendar_dir, strict=False)
    this_year, next_year = today.year, today.year + 1
    covered = calendar.covered_years(around=(this_year, next_year))

    print(f"Holiday calendar as of {today} (folder {settings.calendar_dir}):")
    package = [y for y, how in covered.items() if how == "package"]
    if package:
        print(f"  {', '.join(_spans(package))}: {package_name()} package")
    for year, found in sorted(calendar.files.items()):
        print(
            f"  {year}: file {found.path.name} ({len(found.holidays)} days off, "
            f"{len(found.workdays)} make-up workdays)"
        )
    ok = True
    for problem in calendar.errors:
        print(f"ERROR: {problem} (left out)")
        ok = False
    if covered[this_year] == "none":
        print(
            f"WARNING: {this_year} is not covered: every Monday to Friday counts as a working "
            f"day, public holidays included. Add {this_year}.toml to {settings.calendar_dir}."
        )
        ok = False
    starts = dt.date(next_year, 1, 1)
    days_left = (starts - today).days
    if covered[next_year] != "none":
        print(f"Next year {next_year}: covered ({covered[next_year]}).")
    elif days_left <= args.warn_days:
        print(
            f"WARNING: next year {next_year} is not covered and starts in {days_left} days: "
            f"add {next_year}.toml to {settings.calendar_dir} from the State Council's notice "
            "(see calendar/2026.toml.example), then reinstall the dialplan."
        )
        ok = False
    else:
        warn_from = starts - dt.timedelta(days=args.warn_days)
        print(f"Next year {next_year}: not covered yet (this check fails from {warn_from}).")
    return 0 if ok else 1
