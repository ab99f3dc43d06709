"""`ivr12333 cards add|show`: operators issue cards and look at their status."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from backend.outcomes import Actor, CardView, Channel
from cli.common import quiet_logging, run_async
from cli.main import CommandError


def card_json(card: CardView) -> dict[str, Any]:
    report = card.active_loss_report
    return {
        "card_number": card.card_number,
        "holder_name": card.holder_name,
        "id_number": card.id_masked,
        "status": str(card.state),
        "pin_is_initial": card.pin_is_initial,
        "failed_attempts": card.failed_attempts,
        "attempts_left": card.attempts_left,
        "locked": card.locked,
        "active_loss_report": None
        if report is None
        else {
            "reference": report.reference,
            "channel": report.channel,
            "kind": report.kind,
            "reported_at": report.reported_at.isoformat(),
            "expires_at": report.expires_at.isoformat() if report.expires_at else None,
        },
    }


def _print(card: CardView, as_json: bool) -> None:
    data = card_json(card)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for key, value in data.items():
        print(f"{key:>20}: {value}")


# `--pin` given alone: the PIN is read from standard input, or typed unseen at a terminal.
_READ_PIN = object()


def _read_pin() -> str:
    """The PIN from standard input (first line), or typed twice without echo at a terminal."""
    if sys.stdin is None:
        raise CommandError("--pin reads the PIN from standard input, and there is none")
    if sys.stdin.isatty():
        first = getpass.getpass("PIN (not shown): ")
        if getpass.getpass("PIN again: ") != first:
            raise CommandError("the two PINs differ; nothing was changed")
        return first
    pin = sys.stdin.readline().rstrip("\r\n")
    if not pin:
        raise CommandError("--pin: no PIN on standard input; nothing was changed")
    return pin


def add(args: argparse.Namespace) -> int:
    from backend.services.cards import issue_card

    if args.pin is not None and args.pin is not _READ_PIN:
        # Too late to hide this one, but never accepted: a command line is readable by
        # every user of the machine (ps, /proc) and often kept in shell history.
        raise CommandError(
            "a PIN on the command line is visible to every user of this machine; nothing "
            "was changed. Give --pin alone and type the PIN, or pipe it in: "
            "ivr12333 cards add ... --pin < pin-file"
        )
    pin = _read_pin() if args.pin is _READ_PIN else None
    quiet_logging()
    card = run_async(
        issue_card(
            args.card_number,
            args.id_number,
            args.name,
            Actor(Channel.OPERATOR, "cli"),
            pin=pin,
        )
    )
    _print(card, args.json)
    return 0


def show(args: argparse.Namespace) -> int:
    from backend.services.cards import card_status

    quiet_logging()
    _print(run_async(card_status(args.card_number)), args.json)
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_add = sub.add_parser("add", help="issue a card (initial PIN 123456 unless --pin)")
    p_add.add_argument("--card-number", required=True, help="e.g. A12345678")
    p_add.add_argument("--id-number", required=True, help="18-character resident ID number")
    p_add.add_argument("--name", required=True)
    p_add.add_argument(
        "--pin",
        nargs="?",
        const=_READ_PIN,
        metavar="",
        help=(
            "an enabled PIN instead of the initial one, read from standard input (typed "
            "unseen at a terminal); never on the command line"
        ),
    )
    p_add.add_argument("--json", action="store_true")
    p_add.set_defaults(func=add)
    p_show = sub.add_parser("show", help="a card's status")
    p_show.add_argument("card_number")
    p_show.add_argument("--json", action="store_true")
    p_show.set_defaults(func=show)
