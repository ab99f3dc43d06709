"""structlog set-up: JSON lines, context from contextvars, card and ID numbers masked.

Every call or staff session binds its id with `structlog.contextvars.bind_contextvars`, so
each line it logs carries it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from backend.masking import scrub

# Keys whose values are never written, whatever they hold.
_SECRET_KEY_PARTS = ("pin", "password", "secret", "pepper", "token", "id_number")
_REDACTED = "[redacted]"


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS) and not lowered.endswith(
        ("_masked", "_left", "_is_initial", "_reason", "_outcome")
    )


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            k: (_REDACTED if _is_secret_key(str(k)) else _scrub_value(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(str(value))


def mask_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Redact secret-named keys and mask card and ID numbers in every other value."""
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = _REDACTED
        else:
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


class _Tee:
    """Writes each JSON line to stderr and, when configured, to a file."""

    def __init__(self, streams: list[TextIO]) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


def configure_logging(
    level: str = "info", log_file: Path | None = None, stderr: bool = True
) -> None:
    streams: list[TextIO] = [sys.stderr] if stderr else []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        streams.append(log_file.open("a", encoding="utf-8", buffering=1))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(_Tee(streams)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def configure_from_settings() -> None:
    from backend.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file)
