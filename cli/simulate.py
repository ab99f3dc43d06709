"""`ivr12333 simulate`: one call through the real FastAGI server, with a scripted caller.

The server runs in this process on a free loopback port; the fake Asterisk keys what
`--keys` says (groups as in `ivr.fake_asterisk`) and the call is printed as heard.
`--interactive` waits for the caller at each entry instead (`cli.interactive`; `--json`
for programs).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cli.keysarg import help_text, read_keys
from ivr.fake_asterisk import HANG_UP, SILENCE, Transcript, check_groups

if TYPE_CHECKING:
    from ivr.server import ServerError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--script", default="main", help="AGI script to call (default main)")
    parser.add_argument(
        "--keys",
        default="",
        help=help_text(
            'key groups, one per input prompt, e.g. "2 12345678#": '
            "digits then # | digits (then silence) | # | - (silence) | ! (hang up)"
        ),
    )
    parser.add_argument(
        "--caller", "--caller-id", dest="caller", default="13800138000", help="caller's number"
    )
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="wait for the caller's keys at each entry (a person, or a program with --json)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --interactive: the line protocol for programs on standard input and output",
    )
    parser.add_argument(
        "--at",
        help="place the call at this moment, e.g. 2026-12-02T10:30+08:00 (not in production)",
    )
    parser.add_argument(
        "--sounds",
        type=Path,
        help="where the built prompts are (default <data dir>/sounds); built there if missing",
    )
    parser.add_argument(
        "--hangup-at",
        help="hang up when the Nth command arrives (a number) or when a prompt id plays",
    )
    parser.add_argument("--verbose", action="store_true", help="show the server's log too")
    parser.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from cli.main import CommandError

    if args.at:
        _place_at(args.at)
    if args.json and not args.interactive:
        raise CommandError("--json needs --interactive")
    if args.interactive:
        return _interactive(args)
    keys = read_keys(args.keys, "simulate").split()
    try:
        check_groups(keys)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    hangup_at: int | str | None = args.hangup_at
    if isinstance(hangup_at, str) and hangup_at.isdigit():
        hangup_at = int(hangup_at)
    _configure_logging(args.verbose)
    transcript, errors = asyncio.run(_run(args.script, keys, args.caller, hangup_at))
    text = _prompt_text()
    for line in render(transcript, text):
        print(line)
    if errors:
        raise CommandError(f"the flow failed: {errors[0].message}")
    return 0


def _place_at(moment: str) -> None:
    """The service believes it is `moment` (IVR_NOW_OVERRIDE, which production refuses)."""
    import datetime as dt
    import os

    from backend.settings import get_settings, reset_settings
    from cli.main import CommandError

    try:
        when = dt.datetime.fromisoformat(moment)
    except ValueError:
        raise CommandError(f"--at: not a moment like 2026-12-02T10:30+08:00: {moment!r}") from None
    if when.tzinfo is None:
        raise CommandError("--at needs a time zone, e.g. 2026-12-02T10:30+08:00")
    os.environ["IVR_NOW_OVERRIDE"] = when.isoformat()
    reset_settings()
    get_settings()  # production refuses the override: say so before the call


def _interactive(args: argparse.Namespace) -> int:
    from cli import interactive
    from cli.main import CommandError
    from ivr.simulator import built_prompts
    from prompts.build import BuildError

    if args.keys or args.hangup_at:
        raise CommandError("--interactive reads keys as the call goes: drop --keys, --hangup-at")
    # Standard output is the caller's (in --json mode the protocol's alone): logs go to the
    # log file, and with --verbose to standard error too.
    _configure_logging(args.verbose)
    try:
        lengths = built_prompts(args.sounds)
    except (BuildError, OSError) as exc:  # the call goes on; lengths read as unknown
        print(f"ivr12333 simulate: warning: prompts not built ({exc})", file=sys.stderr)
        lengths = built_prompts(args.sounds, build=False)
    call = interactive.run(args.script, args.caller, lengths, json_mode=args.json)
    if call.errors:
        raise CommandError(f"the flow failed: {call.errors[0].message}")
    return 0


def _configure_logging(verbose: bool) -> None:
    from backend.logsetup import configure_logging
    from backend.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, "stderr" if verbose else None)


async def _run(
    script: str, keys: list[str], caller_number: str, hangup_at: int | str | None
) -> tuple[Transcript, list[ServerError]]:
    from ivr.simulator import place_call

    call = await place_call(script, keys=keys, caller_number=caller_number, hangup_at=hangup_at)
    return call.transcript, list(call.errors)


def _prompt_text() -> Callable[[str], str]:
    """Prompt id -> its Mandarin text, or the id itself if the catalogue lacks it."""
    try:
        from prompts.catalogue import PROMPTS
    except ImportError:
        return lambda prompt_id: prompt_id
    return lambda prompt_id: PROMPTS.get(prompt_id, prompt_id)


def render(transcript: Transcript, text: Callable[[str], str]) -> list[str]:
    """The call as lines: what the caller heard and what they keyed (PINs as dots)."""
    from ivr.simulator import asks_for_pin

    lines: list[str] = []
    spelled = False  # the previous line reads a number out key by key
    counted = False  # the previous line ends with a count ("two"), its sentence unfinished
    asked = ""  # the prompt the next keys answer
    for kind, value in transcript.events:
        key_by_key = kind == "prompt" and value.startswith(("digit-", "letter-"))
        count = kind == "prompt" and value.startswith("count-")
        if kind == "prompt":
            asked = value
        if kind == "prompt" and lines and ((key_by_key and spelled) or count or counted):
            lines[-1] += text(value)
        elif kind == "prompt":
            lines.append(f"🔊 {text(value)}")
        elif kind == "keys":
            shown = {SILENCE: "(silence)", "#": "# (alone)"}.get(value, value)
            # What is keyed for a PIN is printed as dots.
            if asks_for_pin(asked) and value not in (SILENCE, "#"):
                shown = re.sub(r"[^#]", "•", value)
            lines.append(f"☎ {shown}")
        elif kind == "missing":
            lines.append(f"⚠ missing prompt: {value}")
        spelled = key_by_key
        counted = count
    if transcript.ended == "caller-hangup":
        lines.append(f"☎ {HANG_UP} (hung up)")
    for name, value in transcript.variables.items():
        lines.append(f"  {name}={value}")
    lines.append(f"— {transcript.ended}")
    return lines
