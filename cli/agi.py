"""`ivr12333 agi serve`: the FastAGI server Asterisk hands calls to."""

from __future__ import annotations

import argparse
import asyncio


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="agi_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve FastAGI calls until SIGTERM or SIGINT")
    serve.add_argument("--host", help="address to bind (default: settings, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: settings, 4573)")
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=20.0,
        help="on SIGTERM, how long calls in progress may run before goodbye (default 20)",
    )
    serve.add_argument(
        "--max-calls",
        type=int,
        default=8000,
        help="calls held at once; more are refused politely (default 8000)",
    )
    serve.set_defaults(func=_serve)

    check = sub.add_parser(
        "check",
        help="exit 0 if the FastAGI server answers a health request (a container health check)",
    )
    check.add_argument("--host", help="server address (default: settings; 0.0.0.0 means 127.0.0.1)")
    check.add_argument("--port", type=int, help="server port (default: settings, 4573)")
    check.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)"
    )
    check.set_defaults(func=_check)


def _serve(args: argparse.Namespace) -> int:
    from backend.logsetup import configure_from_settings
    from backend.settings import InsecureBind, get_settings
    from cli.main import CommandError
    from ivr.registry import SCRIPTS, load_flows
    from ivr.server import serve

    configure_from_settings()
    settings = get_settings()
    host = args.host or settings.agi_host
    try:
        settings.check_bind(host, "FastAGI server")
    except InsecureBind as exc:
        raise CommandError(str(exc)) from None
    port = settings.agi_port if args.port is None else args.port
    load_flows()

    def ready(bound: int) -> None:
        # Scripts (and tests) wait for this line before placing calls.
        print(f"listening on {host}:{bound}", flush=True)

    asyncio.run(
        serve(
            host,
            port,
            SCRIPTS,
            drain_seconds=args.drain_seconds,
            max_calls=args.max_calls,
            on_ready=ready,
        )
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    import socket

    from backend.settings import get_settings
    from cli.main import CommandError
    from ivr.server import HEALTH_REPLY, HEALTH_SCRIPT

    settings = get_settings()
    host = args.host or settings.agi_host
    # A server bound to every address is asked on the loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    port = settings.agi_port if args.port is None else args.port
    header = f"agi_network: yes\nagi_network_script: {HEALTH_SCRIPT}\n\n".encode()
    try:
        with socket.create_connection((host, port), timeout=args.timeout) as conn:
            conn.sendall(header)
            answer = conn.makefile("rb").readline(len(HEALTH_REPLY) + 1)
    except OSError as exc:
        raise CommandError(f"FastAGI server {host}:{port}: {exc}") from None
    if answer != HEALTH_REPLY:
        raise CommandError(f"FastAGI server {host}:{port} answered {answer[:40]!r}")
    print(f"FastAGI server {host}:{port} healthy")
    return 0
