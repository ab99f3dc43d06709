"""/healthz, /readyz and /metrics of the console process, for probes and Prometheus.

No login: they say nothing about cards, callers or staff (backend.metrics keeps every label
to a closed list). The console binds to loopback unless told otherwise; behind a proxy,
publish only the pages staff use.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from starlette.responses import Response

from backend.health import answer, database_problem

router = APIRouter()

# Set by console.server to the web server's "shutting down" flag.
draining: Callable[[], bool] = lambda: False  # noqa: E731 - replaced, not called as a def


async def _readiness() -> str | None:
    if draining():
        return "draining"
    return await database_problem()


async def _answer(path: str) -> Response:
    status, body, content_type = await answer(path, _readiness)
    return Response(body, int(status.split(" ", 1)[0]), media_type=content_type)


@router.get("/healthz")
async def healthz() -> Response:
    return await _answer("/healthz")


@router.get("/readyz")
async def readyz() -> Response:
    return await _answer("/readyz")


@router.get("/metrics")
async def metrics() -> Response:
    return await _answer("/metrics")
