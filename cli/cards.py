"""`ivr12333 cards add|show`: operators issue cards and look at their status."""

from __future__ import annotations

import argparse
import json
from typing import Any

from backend.outcomes import Actor, CardView, Channel
from cli.common import quiet_logging, run_async


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


def add(args: argparse.Namespace) -> int:
    from backend.services.cards import issue_card

    quiet_logging()
    card = run_async(
        issue_card(
            args.card_number,
            args.id_number,
            args.name,
            Actor(Channel.OPERATOR, "cli"),
            pin=args.pin,
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
    p_add.add_argument("--pin", help="an enabled PIN instead of the initial one")
    p_add.add_argument("--json", action="store_true")
    p_add.set_defaults(func=add)
    p_show = sub.add_parser("show", help="a card's status")
    p_show.add_argument("card_number")
    p_show.add_argument("--json", action="store_true")
    p_show.set_defaults(func=show)
