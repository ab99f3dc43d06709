"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies").

A successful login marks the browser as one this account logs in from: a random token in
an HttpOnly cookie sent only to /login, its SHA-256 in `login_devices` beside the account.
Such a browser is not held by the account-wide pause that a stranger can cause with wrong
passwords; it has a failure limit of its own. A browser keeps one token for every account
that logs in on it (a shared counter PC), adopted only if the console issued it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert

from backend.db.tables import login_devices, staff
from backend.services import common
from console import sessions
from console.config import get_console_settings

COOKIE = "ivr_device"
PATH = "/login"


def _fresh() -> object:
    days = literal(dt.timedelta(days=get_console_settings().device_days))
    return login_devices.c.last_used > func.now() - days


async def trusted(cookie: str | None, username: str) -> str | None:
    """The key of this browser's own limit when its device cookie was issued at a login to
    `username` within `device_days`; None for a browser that account has not used."""
    if not sessions.well_formed(cookie):
        return None
    assert cookie is not None
    token_hash = sessions.digest(cookie)
    query = (
        select(login_devices.c.staff_id)
        .join(staff, staff.c.id == login_devices.c.staff_id)
        .where(
            login_devices.c.token_hash == token_hash,
            staff.c.username == username.strip().lower(),
            _fresh(),  # type: ignore[arg-type]
        )
    )
    async with common.transaction() as conn:
        staff_id = (await conn.execute(query)).scalar_one_or_none()
    return None if staff_id is None else f"{token_hash}:{staff_id}"


async def remember(cookie: str | None, staff_id: int) -> str:
    """After a successful login: the browser's device token, now trusted for `staff_id`.

    The presented token is kept only if the console issued it (it has a row); anything else
    is replaced, so a value planted in a browser never becomes trusted."""
    days = dt.timedelta(days=get_console_settings().device_days)
    async with common.transaction() as conn:
        await conn.execute(
            delete(login_devices).where(login_devices.c.last_used <= func.now() - literal(days))
        )
        if sessions.well_formed(cookie):
            assert cookie is not None
            token_hash = sessions.digest(cookie)
            issued = exists().where(login_devices.c.token_hash == token_hash)
            adopted = (
                await conn.execute(
                    insert(login_devices)
                    .from_select(
                        ["token_hash", "staff_id"],
                        select(literal(token_hash), literal(staff_id)).where(issued),
                    )
                    .on_conflict_do_update(
                        index_elements=["token_hash", "staff_id"], set_={"last_used": func.now()}
                    )
                    .returning(login_devices.c.staff_id)
                )
            ).first()
            if adopted is not None:
                return cookie
        token = sessions.new_token()
        await conn.execute(
            insert(login_devices).values(token_hash=sessions.digest(token), staff_id=staff_id)
        )
    return token
