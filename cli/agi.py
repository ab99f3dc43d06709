"""`ivr12333 agi serve`: the FastAGI server Asterisk hands calls to."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
        help="calls held at once by each worker; more are refused politely (default 8000)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port, one event loop each (default: the cores)",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from backend.logsetup import configure_from_settings
    from backend.settings import InsecureBind, get_settings
    from cli.main import CommandError
    from ivr.registry import SCRIPTS, load_flows
    from ivr.server import serve
    from ivr.workers import default_workers, run_workers

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

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise CommandError("--workers must be at least 1")
    if workers == 1:
        uvloop.run(
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

    def worker(bound: int, listening: Callable[[], None]) -> None:
        uvloop.run(
            serve(
                host,
                bound,
                SCRIPTS,
                drain_seconds=args.drain_seconds,
                max_calls=args.max_calls,
                on_ready=lambda _: listening(),
                reuse_port=True,
            )
        )

    try:
        return run_workers(host, port, workers, worker, on_ready=ready)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
