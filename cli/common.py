"""Helpers the sub-commands share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from backend.errors import BackendError
from cli.main import CommandError

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a backend coroutine; its typed failures become one clear line."""

    async def wrapped() -> T:
        from backend.db.engine import dispose_all

        try:
            return await coro
        finally:
            await dispose_all()

    try:
        return asyncio.run(wrapped())
    except BackendError as exc:
        raise CommandError(str(exc)) from None


def quiet_logging() -> None:
    """Commands print their own answers; log lines only for warnings and worse."""
    from backend.logsetup import configure_logging
    from backend.settings import get_settings

    configure_logging("warning", get_settings().log_file)
