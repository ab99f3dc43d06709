"""Holders a staff member has just checked, waiting for the confirming POST.

The confirming action needs the card and its holder again, and neither may go into a page:
they wait in PostgreSQL (so any console process can confirm) under a random token the page
carries instead. The row keeps the token's SHA-256, the card number and the keyed hash of
the ID number, never the number itself. A token is good for the session that made it, one
purpose and `pending_minutes`, and is taken once: one conditional DELETE ... RETURNING, so
of two concurrent confirmations exactly one gets it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import delete, func, insert, literal

from backend.db.tables import console_pending
from backend.services import common
from backend.services.common import IdHash
from console import sessions
from console.config import get_console_settings


@dataclass(frozen=True)
class Pending:
    card_number: str
    card_masked: str
    # Stands in for the ID number in the backend's holder check.
    holder_hash: IdHash

    def __repr__(self) -> str:
        # Never print the card number, should this object reach a log or a traceback.
        return f"Pending({self.card_masked!r})"


async def put(
    request: Request, purpose: str, card_number: str, id_number: str, card_masked: str
) -> str:
    """Keep a checked holder for the logged-in staff member; the token for the page."""
    session = await sessions.of(request)
    assert session.staff is not None, "only a logged-in staff member checks holders"
    holder = common.id_hash(common.check_id_number(id_number))
    token = secrets.token_urlsafe(24)
    lifetime = literal(dt.timedelta(minutes=get_console_settings().pending_minutes))
    async with common.transaction() as conn:
        await conn.execute(
            delete(console_pending).where(console_pending.c.expires_at <= func.now())
        )
        await conn.execute(
            insert(console_pending).values(
                token_hash=sessions.digest(token),
                session_hash=sessions.digest(session.token),
                staff_id=session.staff.staff_id,
                purpose=purpose,
                card_number=card_number,
                card_masked=card_masked,
                holder_hash=holder,
                expires_at=func.now() + lifetime,
            )
        )
    return token


async def take(request: Request, token: str, purpose: str) -> Pending | None:
    """The holder kept under `token` for this session and purpose, removed; None if there is
    none (unknown, another session's, another purpose, expired or already taken)."""
    session = await sessions.of(request)
    if session.staff is None or not token:
        return None
    statement = (
        delete(console_pending)
        .where(
            console_pending.c.token_hash == sessions.digest(token),
            console_pending.c.session_hash == sessions.digest(session.token),
            console_pending.c.staff_id == session.staff.staff_id,
            console_pending.c.purpose == purpose,
            console_pending.c.expires_at > func.now(),
        )
        .returning(
            console_pending.c.card_number,
            console_pending.c.card_masked,
            console_pending.c.holder_hash,
        )
    )
    async with common.transaction() as conn:
        row = (await conn.execute(statement)).first()
    if row is None:
        return None
    return Pending(row.card_number, row.card_masked, IdHash(row.holder_hash))
