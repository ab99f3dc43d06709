"""One async engine per process, shared by every call and staff session."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_engines: dict[str, AsyncEngine] = {}


def get_engine(url: str | None = None) -> AsyncEngine:
    if url is None:
        from backend.pgcluster import database_url

        url = database_url()
    engine = _engines.get(url)
    if engine is None:
        # Statements carry bound parameters only; the values never enter SQL text, and
        # hide_parameters keeps them out of exceptions' text too.
        engine = create_async_engine(
            url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
        )
        _engines[url] = engine
    return engine


async def dispose_all() -> None:
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
