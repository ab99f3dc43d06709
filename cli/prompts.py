"""`ivr12333 prompts`: list the Mandarin prompt catalogue and build its sound files."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.main import CommandError


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    build_parser = sub.add_parser("build", help="make the Asterisk sound files")
    build_parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="sounds directory; files go to OUT/zh/ivr12333 (default: DATA_DIR/sounds)",
    )
    build_parser.add_argument("--force", action="store_true", help="rebuild every prompt")
    build_parser.add_argument("--jobs", type=int, default=2, help="prompts made at once")
    build_parser.set_defaults(func=_build)

    list_parser = sub.add_parser("list", help="print every prompt id and its text")
    list_parser.set_defaults(func=_list)


def _build(args: argparse.Namespace) -> int:
    from prompts.build import BuildError, build

    try:
        report = build(args.out, force=args.force, jobs=args.jobs)
    except BuildError as exc:
        raise CommandError(str(exc)) from exc
    print(
        f"{report.sound_dir}: {len(report.built)} built, {len(report.skipped)} unchanged, "
        f"{len(report.removed)} removed, {len(report.recorded)} from recordings "
        f"in {report.seconds:.1f}s"
    )
    if report.unknown_recordings:
        # Most likely a misspelt file name: say so rather than ignore the recording.
        print("recordings matching no prompt id: " + ", ".join(report.unknown_recordings))
    return 0


def _list(args: argparse.Namespace) -> int:
    from prompts.catalogue import PROMPTS

    for prompt_id, text in PROMPTS.items():
        print(f"{prompt_id}\t{text}")
    return 0
