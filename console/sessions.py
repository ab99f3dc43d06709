"""Sessions kept in PostgreSQL: the cookie holds a random token, the table its SHA-256.

A row names the staff member, the session's CSRF nonce, when it began and when it was last
used. The one statement that finds it also refuses it after `idle_minutes` without a
request, `max_hours` after login, or once the account is inactive, and records this
request as its last use. Logging out deletes the row, and so do deactivating the account
and changing its password (backend/services/staff.py): a copied cookie opens nothing
afterwards, in any console process.

Before login a browser holds a token that is in no row; its CSRF token is derived from it,
so the login form is protected too. Login always issues a new token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import ColumnElement, delete, func, insert, literal, or_, update

from backend.db.tables import console_sessions, staff
from backend.services import common
from backend.services.staff import StaffView, staff_view
from console.config import get_console_settings

COOKIE = "ivr_console"
# What secrets.token_urlsafe(32) gives; anything else is not ours and costs no query.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    staff: StaffView | None = None

    def __repr__(self) -> str:
        # The token is a credential: never in a log line or a traceback.
        who = self.staff.username if self.staff else None
        return f"Session(staff={who!r})"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str | None) -> bool:
    return token is not None and _TOKEN.fullmatch(token) is not None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def anonymous(token: str | None = None) -> Session:
    token = token or new_token()
    return Session(token, hashlib.sha256(b"csrf:" + token.encode()).hexdigest())


def _still_valid() -> list[ColumnElement[bool]]:
    s = get_console_settings()
    now = func.now()
    return [
        console_sessions.c.last_seen > now - literal(dt.timedelta(minutes=s.idle_minutes)),
        console_sessions.c.created_at > now - literal(dt.timedelta(hours=s.max_hours)),
    ]


async def _load(token: str) -> Session | None:
    statement = (
        update(console_sessions)
        .where(
            console_sessions.c.token_hash == digest(token),
            console_sessions.c.staff_id == staff.c.id,
            staff.c.active.is_(True),
            *_still_valid(),
        )
        .values(last_seen=func.now())
        .returning(
            console_sessions.c.csrf_nonce,
            staff.c.id,
            staff.c.username,
            staff.c.display_name,
            staff.c.role,
            staff.c.active,
            staff.c.created_at,
        )
    )
    async with common.transaction() as conn:
        row = (await conn.execute(statement)).first()
    return None if row is None else Session(token, row.csrf_nonce, staff_view(row))


async def of(request: Request) -> Session:
    """This request's session (looked up once per request); anonymous if none is valid."""
    found: Session | None = getattr(request.state, "session", None)
    if found is not None:
        return found
    cookie = request.cookies.get(COOKIE)
    if cookie is None or not well_formed(cookie):
        found = anonymous()
        request.state.cookie_out = found.token
    else:
        found = await _load(cookie) or anonymous(cookie)
    request.state.session = found
    return found


async def start(request: Request, who: StaffView) -> Session:
    """A new session for `who`, replacing this browser's current one."""
    previous = await of(request)
    token, nonce = new_token(), secrets.token_hex(32)
    async with common.transaction() as conn:
        # Housekeeping on the rare write path: rows past either limit are dead anyway.
        s = get_console_settings()
        now = func.now()
        await conn.execute(
            delete(console_sessions).where(
                or_(
                    console_sessions.c.token_hash == digest(previous.token),
                    console_sessions.c.last_seen
                    <= now - literal(dt.timedelta(minutes=s.idle_minutes)),
                    console_sessions.c.created_at <= now - literal(dt.timedelta(hours=s.max_hours)),
                )
            )
        )
        await conn.execute(
            insert(console_sessions).values(
                token_hash=digest(token), staff_id=who.staff_id, csrf_nonce=nonce
            )
        )
    session = Session(token, nonce, who)
    request.state.session = session
    request.state.cookie_out = token
    return session


async def end(request: Request) -> None:
    """Log out: the row goes, and the browser gets a new anonymous token."""
    current = await of(request)
    async with common.transaction() as conn:
        await conn.execute(
            delete(console_sessions).where(console_sessions.c.token_hash == digest(current.token))
        )
    fresh = anonymous()
    request.state.session = fresh
    request.state.cookie_out = fresh.token
