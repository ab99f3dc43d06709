"""`ivr12333 console serve`: the staff web console."""

from __future__ import annotations

import argparse

from backend.settings import InsecureBind, get_settings
from cli.main import CommandError


def serve(args: argparse.Namespace) -> int:
    from console.config import get_console_settings
    from console.server import serve as run_server

    get_console_settings()  # bad settings stop here, before a port is bound
    settings = get_settings()
    host = args.host or settings.console_host
    port = args.port or settings.console_port
    try:
        settings.check_bind(host, "console")
    except InsecureBind as exc:
        raise CommandError(str(exc)) from None
    print(f"console on http://{host}:{port}/")
    run_server(host, port)
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_serve = sub.add_parser("serve", help="serve the console (loopback unless told otherwise)")
    p_serve.add_argument("--host", help="address to bind (default 127.0.0.1, IVR_CONSOLE_HOST)")
    p_serve.add_argument("--port", type=int, help="port (default 8333, IVR_CONSOLE_PORT)")
    p_serve.set_defaults(func=serve)
