"""Every secret is hashed here, and only here: card PINs and staff passwords.

A PIN is first keyed with HMAC and the pepper (kept outside the database: with only 10^6
six-digit PINs, a stolen table alone is worthless only while the pepper is secret), then
hashed with argon2id. A staff password goes to argon2id as it is. Hashing happens in the
application, so no secret ever reaches SQL text.

All hashing shares one small thread pool (argon2 releases the GIL), so the event loop
serving calls and pages never waits on it, and one count of the jobs queued or running.
A job that would pass its kind's queue limit is refused at once with `HashingBusy`,
costing nothing: a flood of anonymous logins can take neither the memory nor the cores
that callers' PIN checks need.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.errors import ServiceUnavailable
from backend.settings import get_settings

T = TypeVar("T")

_WORKERS = 2
_pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="secrethash")
_lock = threading.Lock()
_in_flight = 0


class HashingBusy(ServiceUnavailable):
    """Too many hashes queued for this kind of secret; nothing was checked or changed."""


class Kind(Enum):
    """Whose secret: the queue limit differs, anonymous logins get the smaller one."""

    PIN = "pin"
    PASSWORD = "password"  # noqa: S105 (a kind of secret, not one)


def _queue_limit(kind: Kind) -> int:
    s = get_settings()
    return s.pin_hash_queue_limit if kind is Kind.PIN else s.password_hash_queue_limit


async def _run(kind: Kind, job: Callable[[], T]) -> T:
    global _in_flight
    with _lock:
        if _in_flight >= _queue_limit(kind):
            raise HashingBusy(f"{kind.value} hashing is busy; try again shortly")
        _in_flight += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, job)
    finally:
        with _lock:
            _in_flight -= 1


@lru_cache(maxsize=4)
def _argon2(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def _pin_hasher() -> PasswordHasher:
    s = get_settings()
    return _argon2(s.pin_hash_time_cost, s.pin_hash_memory_kib, 1)


def _password_hasher() -> PasswordHasher:
    s = get_settings()
    return _argon2(s.password_hash_time_cost, s.password_hash_memory_kib, 1)


def _peppered(pin: str) -> bytes:
    pepper = get_settings().pepper_bytes
    return hmac.new(pepper, b"pin:" + pin.encode(), hashlib.sha256).hexdigest().encode()


def _matches(hasher: PasswordHasher, stored: str, secret: bytes | str) -> bool:
    try:
        return hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


# PINs ---------------------------------------------------------------------------------


async def hash_pin(pin: str) -> str:
    hasher, keyed = _pin_hasher(), _peppered(pin)
    return await _run(Kind.PIN, lambda: hasher.hash(keyed))


async def pin_matches(stored: str, pin: str) -> bool:
    hasher, keyed = _pin_hasher(), _peppered(pin)
    return await _run(Kind.PIN, lambda: _matches(hasher, stored, keyed))


# Staff passwords -----------------------------------------------------------------------


async def hash_password(password: str) -> str:
    hasher = _password_hasher()
    return await _run(Kind.PASSWORD, lambda: hasher.hash(password))


async def password_matches(stored: str, password: str) -> bool:
    hasher = _password_hasher()
    return await _run(Kind.PASSWORD, lambda: _matches(hasher, stored, password))
