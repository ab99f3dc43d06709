"""Failed logins per username: after too many, the account pauses for a while.

Kept in memory: the console runs as one process, and a restart only forgives early.
"""

from __future__ import annotations

import time
from collections import defaultdict


class LoginThrottle:
    def __init__(self, attempts: int, pause_seconds: float) -> None:
        self._attempts = attempts
        self._pause = pause_seconds
        self._failures: dict[str, list[float]] = defaultdict(list)

    def _recent(self, username: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(username, []) if now - t < self._pause]
        if kept:
            self._failures[username] = kept
        else:
            self._failures.pop(username, None)
        return kept

    def paused(self, username: str) -> bool:
        return len(self._recent(username, time.monotonic())) >= self._attempts

    def failed(self, username: str) -> None:
        self._failures[username].append(time.monotonic())

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)
