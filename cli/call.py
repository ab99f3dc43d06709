"""`ivr12333 call 12333 --keys "wait:3 2 wait:2 12345678#"`: a real SIP call with SIPp."""

from __future__ import annotations

import argparse

from cli.keysarg import help_text, read_keys
from cli.main import CommandError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the number to dial, e.g. 12333")
    parser.add_argument(
        "--keys",
        default="",
        help=help_text(
            "key groups sent as RFC 4733 events, and wait:SECONDS pauses, space-separated"
        ),
    )
    parser.add_argument("--sip-port", type=int, default=5060, help="Asterisk's UDP port")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest call, seconds")
    parser.add_argument("--tone-ms", type=int, default=150, help="length of each key tone")
    parser.set_defaults(func=_call)


def _call(args: argparse.Namespace) -> int:
    from asterisk_local.caller import CallError, place_call
    from backend.logsetup import configure_from_settings

    configure_from_settings()
    try:
        result = place_call(
            args.number,
            read_keys(args.keys, "call"),
            sip_port=args.sip_port,
            timeout=args.timeout,
            tone_ms=args.tone_ms,
        )
    except CallError as exc:
        raise CommandError(str(exc)) from exc
    print(result.summary())
    if result.ended_by in ("timeout", "error"):
        print(result.sipp_output.strip()[-1500:])
        return 1
    return 0
