"""Entry point of `ivr12333`: dispatches to one module per sub-command group.

Modules are imported only when their command runs, so `ivr12333 db status` does not pay
for the telephony or web stacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module, one-line help). Each module offers `register(parser)` that adds
# its arguments and sets `func`, a callable taking the parsed namespace and returning an
# exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("cli.db", "the local PostgreSQL cluster and migrations"),
    "cards": ("cli.cards", "issue and inspect social-security cards"),
    "agi": ("cli.agi", "the FastAGI server"),
    "prompts": ("cli.prompts", "the Mandarin prompt catalogue and sound files"),
    "simulate": ("cli.simulate", "run a call through the FastAGI server without a phone"),
    "asterisk": ("cli.asterisk", "the local Asterisk 22 used by `make run` and the tests"),
    "call": ("cli.call", "place a real SIP call with SIPp"),
    "console": ("cli.console", "the staff web console"),
    "staff": ("cli.staff", "staff accounts of the console"),
    "run": ("cli.run", "bring up the whole service locally"),
    "hours": ("cli.hours", "the holiday calendar behind office hours"),
}


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr12333", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        if name == wanted:
            module = importlib.import_module(module_name)
            module.register(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.parse_args([*args_list, "--help"])
        return 2
    from pydantic import ValidationError

    try:
        return int(func(args) or 0)
    except CommandError as exc:
        print(f"ivr12333 {args.command}: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        # Settings that cannot start the service; the messages name settings, never values.
        problems = "; ".join(str(e["msg"]) for e in exc.errors(include_input=False))
        print(f"ivr12333 {args.command}: configuration: {problems}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # As `python -m cli.main` this file runs as __main__, a module apart from the cli.main
    # the commands import: only that module's main() catches their CommandError.
    from cli.main import main as imported_main

    sys.exit(imported_main())
