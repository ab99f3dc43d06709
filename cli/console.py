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
    run_server(host, port)
    return 0


def check(args: argparse.Namespace) -> int:
    """GET /login of a running console; exit 0 on 200 (a container health check)."""
    import urllib.error
    import urllib.request

    settings = get_settings()
    host = args.host or settings.console_host
    # A console bound to every address is asked on the loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    port = args.port or settings.console_port
    url = f"http://{host}:{port}/login" if ":" not in host else f"http://[{host}]:{port}/login"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"console {url}: {exc}") from None
    if status != 200:
        raise CommandError(f"console {url}: HTTP {status}")
    print(f"console {url}: healthy")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_serve = sub.add_parser("serve", help="serve the console (loopback unless told otherwise)")
    p_serve.add_argument("--host", help="address to bind (default 127.0.0.1, IVR_CONSOLE_HOST)")
    p_serve.add_argument("--port", type=int, help="port (default 8333, IVR_CONSOLE_PORT)")
    p_serve.set_defaults(func=serve)
    p_check = sub.add_parser(
        "check", help="exit 0 if the console answers GET /login (a container health check)"
    )
    p_check.add_argument(
        "--host", help="console address (default: settings; 0.0.0.0 means 127.0.0.1)"
    )
    p_check.add_argument("--port", type=int, help="port (default 8333, IVR_CONSOLE_PORT)")
    p_check.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)"
    )
    p_check.set_defaults(func=check)
