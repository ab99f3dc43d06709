"""Sessions in a signed cookie: who is logged in, since when, and the CSRF nonce.

The cookie is re-signed on every response, so its signature time is the last request:
`idle_minutes` without a request ends the session, and `max_hours` after login it ends
anyway. Nothing secret is in it (a staff id and a random nonce); the signature stops forgery.
The staff row is read on every request, so a deactivated account loses its session at once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from console.config import ConsoleSettings

COOKIE = "ivr_console"


@dataclass(frozen=True)
class Session:
    nonce: str
    staff_id: int | None = None
    since: float = 0.0


def anonymous() -> Session:
    return Session(nonce=secrets.token_urlsafe(24))


def logged_in(staff_id: int) -> Session:
    """A fresh nonce on login, so a token seen before login is worthless after it."""
    return Session(nonce=secrets.token_urlsafe(24), staff_id=staff_id, since=time.time())


def _serializer(settings: ConsoleSettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_bytes, salt="console-session")


def dump(session: Session, settings: ConsoleSettings) -> str:
    return _serializer(settings).dumps([session.nonce, session.staff_id, session.since])


def load(cookie: str | None, settings: ConsoleSettings) -> Session:
    """The cookie's session, or a new anonymous one if it is missing, forged or expired."""
    if not cookie:
        return anonymous()
    try:
        nonce, staff_id, since = _serializer(settings).loads(
            cookie, max_age=settings.idle_minutes * 60
        )
    except (BadSignature, ValueError, TypeError):
        return anonymous()
    if not isinstance(nonce, str) or not isinstance(since, int | float):
        return anonymous()
    if staff_id is not None and (
        not isinstance(staff_id, int) or time.time() - since > settings.max_hours * 3600
    ):
        return anonymous()
    return Session(nonce=nonce, staff_id=staff_id, since=float(since))
