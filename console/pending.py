"""Holders a staff member has just checked, waiting for the confirming POST.

The confirming action needs the card number and the full ID number again, and neither may
go into a page: they wait here, in the process's memory only, under a random token the
page carries instead. A token is good for one staff member, one purpose and a few minutes,
and is used once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Pending:
    staff_username: str
    purpose: str  # "call:<call id>" or "counter:<action>"
    card_number: str
    id_number: str
    card_masked: str
    expires: float

    def __repr__(self) -> str:
        # Never print the numbers, should this object reach a log or a traceback.
        return f"Pending({self.staff_username!r}, {self.purpose!r}, {self.card_masked!r})"


class PendingStore:
    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._items: dict[str, Pending] = {}

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._items.items() if v.expires <= now]:
            del self._items[key]

    def put(
        self, staff_username: str, purpose: str, card_number: str, id_number: str, masked: str
    ) -> str:
        now = time.monotonic()
        self._sweep(now)
        token = secrets.token_urlsafe(24)
        self._items[token] = Pending(
            staff_username, purpose, card_number, id_number, masked, now + self._ttl
        )
        return token

    def peek(self, token: str, staff_username: str, purpose: str) -> Pending | None:
        self._sweep(time.monotonic())
        item = self._items.get(token)
        if item is None or item.staff_username != staff_username or item.purpose != purpose:
            return None
        return item

    def take(self, token: str, staff_username: str, purpose: str) -> Pending | None:
        item = self.peek(token, staff_username, purpose)
        if item is not None:
            del self._items[token]
        return item
