"""PIN hashing: HMAC with a pepper kept outside the database, then argon2id.

With only 10^6 six-digit PINs a stolen table alone is worthless only while the pepper is
secret; argon2id's cost slows an attacker who has both. Hashing happens here, in the
application, so no PIN ever reaches SQL text. Checks run on a small thread pool (argon2
releases the GIL) so that the event loop serving calls never waits on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.settings import Settings, get_settings

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pinhash")


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def _peppered(pin: str, pepper: bytes) -> bytes:
    return hmac.new(pepper, b"pin:" + pin.encode(), hashlib.sha256).hexdigest().encode()


class PinHasher:
    def __init__(self, settings: Settings | None = None) -> None:
        s = settings or get_settings()
        self._pepper = s.pepper_bytes
        self._ph = _hasher(s.pin_hash_time_cost, s.pin_hash_memory_kib)

    def hash_sync(self, pin: str) -> str:
        return self._ph.hash(_peppered(pin, self._pepper))

    def verify_sync(self, stored: str, pin: str) -> bool:
        try:
            return self._ph.verify(stored, _peppered(pin, self._pepper))
        except (VerificationError, InvalidHashError):
            return False

    async def hash(self, pin: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(_pool, self.hash_sync, pin)

    async def verify(self, stored: str, pin: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            _pool, self.verify_sync, stored, pin
        )

    async def burn(self, pin: str) -> None:
        """Spend what a real check costs, so an unknown card answers as slowly as a known one."""
        await self.verify(_dummy_hash(self._ph), pin)


@lru_cache(maxsize=4)
def _dummy_hash(ph: PasswordHasher) -> str:
    return ph.hash(b"no-such-card")
