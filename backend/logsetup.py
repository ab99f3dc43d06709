"""structlog set-up: JSON lines, context from contextvars, card and ID numbers masked.

Every call or staff session binds its id with `structlog.contextvars.bind_contextvars`, so
each line it logs carries it.

Exceptions are written as their type and traceback (files, lines, code), never their
arguments: an exception's text can hold anything its raiser had at hand (a PIN, an ID
number, PostgreSQL's echo of a bound value). Exception classes whose messages are built
from safe parts only declare `message_is_safe = True`; database errors add their SQLSTATE.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

import structlog

from backend.masking import scrub

# Keys whose values are never written, whatever they hold.
_SECRET_KEY_PARTS = ("pin", "password", "secret", "pepper", "token", "id_number")
_REDACTED = "[redacted]"
# Values written as they are (bool is a subclass of int, but `type()` tells them apart).
_PLAIN = frozenset({int, float, bool, type(None)})


# Keys are the names in log calls, a small fixed set; the FastAGI server logs per call.
@lru_cache(maxsize=1024)
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
    for key, value in event_dict.items():
        if _is_secret_key(key):
            event_dict[key] = _REDACTED
        # Most values are short strings and numbers: no call for them (a line a call).
        elif type(value) is str:
            if len(value) >= 8:
                event_dict[key] = scrub(value)
        elif type(value) not in _PLAIN:
            event_dict[key] = _scrub_value(value)
    return event_dict


def exception_type(exc: BaseException) -> str:
    """`KeyError`, `sqlalchemy.exc.DataError`: builtins by name, others fully qualified."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_exception(exc: BaseException) -> str:
    """One line naming `exc` without its values: the type, plus the (masked) message only
    for classes declaring `message_is_safe`, plus the SQLSTATE of a database error."""
    name = exception_type(exc)
    if getattr(type(exc), "message_is_safe", False):
        return f"{name}: {scrub(str(exc))}" if str(exc) else name
    orig = getattr(exc, "orig", None)  # SQLAlchemy's wrapper around the driver's error
    if orig is not None:
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        detail = type(orig).__name__ + (f", SQLSTATE {code}" if code else "")
        return f"{name} ({detail}; message withheld)"
    return f"{name} (message withheld)"


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception_safely(exc: BaseException) -> str:
    """The traceback as Python prints it, chained exceptions included, but each exception
    described by `describe_exception` and no frame's locals."""
    # chain[i] was raised while or because of chain[i + 1]; links[i] says which.
    chain, links = [exc], []
    while len(chain) < 16:
        latest = chain[-1]
        if latest.__cause__ is not None:
            earlier, link = latest.__cause__, _CAUSE
        elif latest.__context__ is not None and not latest.__suppress_context__:
            earlier, link = latest.__context__, _CONTEXT
        else:
            break
        if any(earlier is seen for seen in chain):
            break
        chain.append(earlier)
        links.append(link)
    parts: list[str] = []
    for index in range(len(chain) - 1, -1, -1):
        item = chain[index]
        if item.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_list(traceback.extract_tb(item.__traceback__)))
        parts.append(describe_exception(item) + "\n")
        if index:
            parts.append(links[index - 1])
    return "".join(parts).rstrip("\n")


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1] if len(exc_info) == 3 else None
    if exc_info:
        return sys.exc_info()[1]
    return None


def exception_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog's `format_exc_info`, rendering with `format_exception_safely`."""
    exc = _exception_of(event_dict.pop("exc_info", None))
    if exc is not None:
        event_dict["exception"] = format_exception_safely(exc)
    return event_dict


def forget_frames(exc: BaseException) -> None:
    """Drop the locals of every finished frame `exc` and its chain passed through, so a
    kept or slow-to-die exception holds no PIN or ID number a flow had in a variable."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        tb: TracebackType | None = item.__traceback__
        traceback.clear_frames(tb)  # frames still running are skipped
        stack += [item.__cause__, item.__context__]


class _Tee:
    """Writes each JSON line to the process's stdout or stderr and, when configured, to a
    file: the whole line, newline included, in one write (structlog's WriteLogger hands
    it over whole). Written in pieces, and unbuffered (PYTHONUNBUFFERED, as in the
    images), each piece is a syscall of its own, and worker processes sharing one stdout
    ran their lines together."""

    def __init__(self, streams: list[TextIO]) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


class _LibraryRecords(logging.Handler):
    """Warnings and errors of libraries (asyncio, SQLAlchemy, Alembic) through the same
    processors: one JSON line each, the exception by type and place only, and only the
    first line of the message (asyncio appends reprs of tasks, which show exception
    arguments)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = record.getMessage().splitlines()
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["exc_info"] = record.exc_info[1]
            structlog.get_logger(record.name).log(
                record.levelno, lines[0] if lines else "", **fields
            )
        except Exception:
            self.handleError(record)


_library_handler = _LibraryRecords(logging.WARNING)


Stream = Literal["stdout", "stderr"]


def configure_logging(
    level: str = "info",
    log_file: Path | None = None,
    stream: Stream | None = "stderr",
    *,
    cache: bool = False,
) -> None:
    """Servers log to stdout (what a container's log collector reads); commands whose
    stdout is their answer log to stderr; tests log to a file only (`stream=None`).

    `cache`: for a process that configures once (a server, a command): each logger is
    built on its first use and kept, where otherwise every log call builds it again
    (tests configure more than once in one process, so they do not cache)."""
    streams: list[TextIO] = []
    if stream is not None:
        streams.append(sys.stdout if stream == "stdout" else sys.stderr)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        streams.append(log_file.open("a", encoding="utf-8", buffering=1))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            exception_processor,
            mask_processor,
            # Added after the masking, which their values (made here) do not need.
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(_Tee(streams)),  # type: ignore[arg-type]
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    if _library_handler not in root.handlers:
        root.addHandler(_library_handler)


def announce(event: str, **fields: str | int) -> None:
    """One JSON line on stdout whatever the log level: a server saying where it listens.
    Scripts, tests and the deploy test wait for it (`read_announcement`)."""
    line = {
        "event": event,
        "level": "info",
        "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        **fields,
    }
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_announcement(line: str | bytes, event: str) -> dict[str, Any] | None:
    """The fields of `announce(event, ...)` if `line` is that announcement, else None."""
    try:
        found = json.loads(line)
    except ValueError:
        return None
    if isinstance(found, dict) and found.get("event") == event:
        return found
    return None


def configure_from_settings(stream: Stream = "stderr") -> None:
    from backend.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, stream, cache=True)
