"""`ivr12333 staff create-supervisor|list|deactivate|set-password`: console accounts from the
shell.

The first supervisor is made here; supervisors make every other account in the console.
A password is never a command-line argument (shell history, `ps`): it comes from a prompt,
from standard input with `--password-stdin`, or from `IVR_STAFF_PASSWORD` (scripts, tests).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from backend.outcomes import Actor, Channel
from cli.common import quiet_logging, run_async
from cli.main import CommandError

PASSWORD_ENV = "IVR_STAFF_PASSWORD"  # noqa: S105 (the variable's name, not a password)
OPERATOR = Actor(Channel.OPERATOR, "cli")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise CommandError(f"no terminal for a prompt: use --password-stdin or {PASSWORD_ENV}")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise CommandError("the two passwords differ")
    return first


def create_supervisor(args: argparse.Namespace) -> int:
    from backend.services.staff import Role, create_staff

    quiet_logging()
    password = read_password(args.password_stdin)
    made = run_async(create_staff(args.username, args.name, Role.SUPERVISOR, password, OPERATOR))
    print(f"supervisor {made.username} created")
    return 0


def list_accounts(args: argparse.Namespace) -> int:
    from backend.services.staff import list_staff

    quiet_logging()
    for account in run_async(list_staff()):
        state = "active" if account.active else "inactive"
        print(f"{account.username:<24} {account.role!s:<11} {state:<9} {account.display_name}")
    return 0


def deactivate(args: argparse.Namespace) -> int:
    from backend.services.staff import deactivate_staff

    quiet_logging()
    if not run_async(deactivate_staff(args.username, OPERATOR)):
        raise CommandError(f"no active account {args.username!r}")
    print(f"{args.username} deactivated")
    return 0


def set_password(args: argparse.Namespace) -> int:
    from backend.services.staff import set_password as set_staff_password

    quiet_logging()
    password = read_password(args.password_stdin)
    if not run_async(set_staff_password(args.username, password, OPERATOR)):
        raise CommandError(f"no account {args.username!r}")
    print(f"password of {args.username} set; its console sessions have ended")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_create = sub.add_parser("create-supervisor", help="create a supervisor account")
    p_create.add_argument("--username", required=True)
    p_create.add_argument("--name", required=True, help="the name shown in the console")
    p_create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p_create.set_defaults(func=create_supervisor)
    p_list = sub.add_parser("list", help="list accounts")
    p_list.set_defaults(func=list_accounts)
    p_off = sub.add_parser("deactivate", help="deactivate an account")
    p_off.add_argument("username")
    p_off.set_defaults(func=deactivate)
    p_pw = sub.add_parser(
        "set-password", help="set an account's password (ends its console sessions)"
    )
    p_pw.add_argument("username")
    p_pw.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p_pw.set_defaults(func=set_password)
