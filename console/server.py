"""Serving the console with uvicorn, where the operator says (loopback by default)."""

from __future__ import annotations

import uvicorn

from backend.logsetup import announce, configure_from_settings
from console.routes import health


def serve(host: str, port: int) -> None:
    configure_from_settings("stdout")
    # No access log: uvicorn would write query strings (a searched card number) verbatim.
    # The app logs method, path and status itself, masked.
    config = uvicorn.Config(
        "console.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,
        # uvicorn's own handlers would print an exception's message and traceback as they
        # are; without a config its loggers reach the application's masked JSON log.
        log_config=None,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    announce("console starting", url=f"http://{host}:{port}/")
    # From SIGTERM on, /readyz says "draining" to requests still being answered.
    health.draining = lambda: server.should_exit
    server.run()
