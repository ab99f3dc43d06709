"""Staff accounts of the console: create, authenticate, list, deactivate, set or change a
password; each audited.

Passwords are hashed with argon2id in the application (on a worker thread), so no password
ever reaches SQL text or a log line. Deactivating an account or changing its password ends
its console sessions in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import secrethash
from backend.db.tables import console_sessions, staff
from backend.errors import InvalidInput
from backend.outcomes import Actor, Channel
from backend.services import common

_USERNAME = re.compile(r"[a-z][a-z0-9._-]{2,31}")
MIN_PASSWORD = 10
MAX_PASSWORD = 128


class Role(StrEnum):
    AGENT = "agent"
    CLERK = "clerk"
    SUPERVISOR = "supervisor"


# The audit channel a staff member acts through.
_CHANNEL = {
    Role.AGENT: Channel.AGENT,
    Role.CLERK: Channel.COUNTER,
    Role.SUPERVISOR: Channel.OPERATOR,
}


@dataclass(frozen=True)
class StaffView:
    staff_id: int
    username: str
    display_name: str
    role: Role
    active: bool
    created_at: dt.datetime

    @property
    def actor(self) -> Actor:
        return actor_for(self.username, self.role)


class DuplicateUsername(InvalidInput):
    def __init__(self) -> None:
        super().__init__("username-taken", "this username exists already")


def actor_for(username: str, role: Role) -> Actor:
    return Actor(_CHANNEL[role], f"staff:{username}")


_dummy: list[str] = []


async def _dummy_hash() -> str:
    """A hash with the current cost that only unknown usernames are checked against; made
    once per process on the hash pool, so the event loop never computes it."""
    if not _dummy:
        _dummy.append(await secrethash.hash_password("not-a-real-password"))
    return _dummy[0]


def check_username(text: str) -> str:
    username = text.strip().lower()
    if not _USERNAME.fullmatch(username):
        raise InvalidInput("username", "3-32 characters: a letter, then letters, digits, . _ -")
    return username


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput("password", f"a password has {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return password


def check_display_name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > 64:
        raise InvalidInput("display-name", "the name is required (at most 64 characters)")
    return name


def staff_view(row: Row[Any]) -> StaffView:
    """A row with the staff table's columns (password hash not needed) as a StaffView."""
    return StaffView(
        staff_id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        active=row.active,
        created_at=row.created_at,
    )


async def create_staff(
    username: str, display_name: str, role: Role | str, password: str, actor: Actor
) -> StaffView:
    """A new active account; `DuplicateUsername` if the name is taken (nothing changes)."""
    name = check_username(username)
    shown = check_display_name(display_name)
    try:
        staff_role = Role(role)
    except ValueError:
        raise InvalidInput("role", "unknown role") from None
    password_hash = await secrethash.hash_password(check_password(password))
    async with common.transaction() as conn:
        row = (
            await conn.execute(
                insert(staff)
                .values(
                    username=name,
                    display_name=shown,
                    role=str(staff_role),
                    password_hash=password_hash,
                )
                .on_conflict_do_nothing(index_elements=["username"])
                .returning(staff)
            )
        ).first()
        if row is None:
            await common.audit(
                conn, actor, "staff-create", "username-taken", None, {"username": name}
            )
        else:
            await common.audit(
                conn, actor, "staff-create", "created", None, {"username": name, "role": row.role}
            )
    if row is None:
        raise DuplicateUsername()
    return staff_view(row)


async def authenticate(username: str, password: str) -> StaffView | None:
    """The active account these credentials open, or None; every attempt is audited."""
    name = username.strip().lower()
    async with common.transaction() as conn:
        row = (await conn.execute(select(staff).where(staff.c.username == name))).first()
    if row is None:
        # As slow as a real check, so timing does not tell which usernames exist.
        await secrethash.password_matches(await _dummy_hash(), password)
        await common.audit_alone(Actor(Channel.OPERATOR, "console"), "login", "unknown-user", None)
        return None
    view = staff_view(row)
    if not await secrethash.password_matches(row.password_hash, password):
        await common.audit_alone(view.actor, "login", "wrong-password", None)
        return None
    if not view.active:
        await common.audit_alone(view.actor, "login", "inactive", None)
        return None
    await common.audit_alone(view.actor, "login", "ok", None)
    return view


async def get_staff(staff_id: int) -> StaffView | None:
    async with common.transaction() as conn:
        row = (await conn.execute(select(staff).where(staff.c.id == staff_id))).first()
    return None if row is None else staff_view(row)


async def list_staff() -> list[StaffView]:
    async with common.transaction() as conn:
        rows = (await conn.execute(select(staff).order_by(staff.c.username))).all()
    return [staff_view(row) for row in rows]


async def deactivate_staff(
    username: str, actor: Actor, *, keep_staff_id: int | None = None
) -> bool:
    """True if an active account was deactivated; False if none (unknown, inactive, or the
    account `keep_staff_id`: a supervisor never deactivates their own, however spelt)."""
    name = username.strip().lower()
    async with common.transaction() as conn:
        conditions = [staff.c.username == name, staff.c.active.is_(True)]
        if keep_staff_id is not None:
            conditions.append(staff.c.id != keep_staff_id)
        done = (
            await conn.execute(
                update(staff).where(*conditions).values(active=False).returning(staff.c.id)
            )
        ).first()
        if done is not None:
            await _end_sessions(conn, done.id)
        outcome = "deactivated" if done is not None else "not-active"
        await common.audit(conn, actor, "staff-deactivate", outcome, None, {"username": name})
    return done is not None


async def _end_sessions(conn: AsyncConnection, staff_id: int) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.staff_id == staff_id))


async def set_password(username: str, password: str, actor: Actor) -> bool:
    """An operator sets a new password (no old one needed); the account's sessions end.
    False if there is no such account."""
    name = username.strip().lower()
    password_hash = await secrethash.hash_password(check_password(password))
    async with common.transaction() as conn:
        done = (
            await conn.execute(
                update(staff)
                .where(staff.c.username == name)
                .values(password_hash=password_hash)
                .returning(staff.c.id)
            )
        ).first()
        if done is not None:
            await _end_sessions(conn, done.id)
        outcome = "set" if done is not None else "unknown-user"
        await common.audit(conn, actor, "staff-set-password", outcome, None, {"username": name})
    return done is not None


async def change_password(staff_id: int, current: str, new: str) -> bool:
    """A staff member changes their own password, proving the current one; every session of
    theirs ends. False (nothing changed) if the current password is wrong, the account is
    inactive, or the password changed meanwhile.

    The caller limits attempts: the current-password check is a guess like a login."""
    check_password(new)
    async with common.transaction() as conn:
        row = (
            await conn.execute(
                select(staff).where(staff.c.id == staff_id, staff.c.active.is_(True))
            )
        ).first()
    if row is None:
        return False
    view = staff_view(row)
    if not await secrethash.password_matches(row.password_hash, current):
        await common.audit_alone(view.actor, "password-change", "wrong-password", None)
        return False
    new_hash = await secrethash.hash_password(new)
    async with common.transaction() as conn:
        # Only over the hash just checked: of two concurrent changes, one wins.
        done = (
            await conn.execute(
                update(staff)
                .where(
                    staff.c.id == staff_id,
                    staff.c.active.is_(True),
                    staff.c.password_hash == row.password_hash,
                )
                .values(password_hash=new_hash)
                .returning(staff.c.id)
            )
        ).first()
        if done is not None:
            await _end_sessions(conn, staff_id)
        outcome = "changed" if done is not None else "changed-meanwhile"
        await common.audit(conn, view.actor, "password-change", outcome, None)
    return done is not None
