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
    serve.add_argument(
        "--metrics-host", help="address for /metrics, /healthz, /readyz (default 127.0.0.1)"
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="port for /metrics, /healthz, /readyz (default: settings, or the FastAGI port "
        "+ 5000; 0: any free port); worker k serves them on this port + 100 k",
    )
    serve.add_argument(
        "--no-metrics", action="store_true", help="serve no /metrics, /healthz, /readyz"
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
    import uvloop

    from backend.logsetup import announce, configure_from_settings
    from backend.settings import InsecureBind, get_settings
    from cli.main import CommandError
    from ivr.scripts import SCRIPTS
    from ivr.server import serve
    from ivr.workers import METRICS_WORKER_STRIDE, default_workers, run_workers

    configure_from_settings("stdout")
    settings = get_settings()
    host = args.host or settings.agi_host
    metrics_host = args.metrics_host or settings.agi_metrics_host
    try:
        settings.check_bind(host, "FastAGI server")
        settings.check_bind(metrics_host, "FastAGI server's metrics")
    except InsecureBind as exc:
        raise CommandError(str(exc)) from None
    port = settings.agi_port if args.port is None else args.port
    metrics_port = args.metrics_port
    if metrics_port is None:
        metrics_port = settings.metrics_port_for(port)
    metrics_address = None if args.no_metrics else (metrics_host, metrics_port)

    def ready(bound: int) -> None:
        # Scripts (and tests) wait for this line before placing calls.
        announce("listening", host=host, port=bound)

    def metrics_ready(bound: int) -> None:
        announce("metrics listening", url=f"http://{metrics_host}:{bound}/metrics")

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
                metrics_address=metrics_address,
                on_metrics=metrics_ready,
            )
        )
        return 0

    def worker(index: int, bound: int, listening: Callable[[], None]) -> None:
        # Each worker counts its own calls: worker k's metrics are on the metrics port
        # + k * METRICS_WORKER_STRIDE (a stride, so two servers on adjacent ports with
        # several workers each do not collide).
        address = None
        if metrics_address is not None:
            host_m, port_m = metrics_address
            address = (host_m, port_m + index * METRICS_WORKER_STRIDE if port_m else 0)
        uvloop.run(
            serve(
                host,
                bound,
                SCRIPTS,
                drain_seconds=args.drain_seconds,
                max_calls=args.max_calls,
                on_ready=lambda _: listening(),
                metrics_address=address,
                on_metrics=metrics_ready,
                reuse_port=True,
            )
        )

    try:
        return run_workers(host, port, workers, worker, on_ready=ready)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


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
