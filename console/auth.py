"""Who is asking: the logged-in staff member and the roles each page allows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request

from backend.services.staff import Role, StaffView
from console import sessions


class LoginRequired(Exception):
    """No valid session: the browser goes to the login page."""


class WrongRole(Exception):
    """Logged in, but this page belongs to another role."""


async def current_staff(request: Request) -> StaffView | None:
    """The session's staff member (the session query checks the account is active)."""
    found = (await sessions.of(request)).staff
    if found is not None and getattr(request.state, "staff", None) is None:
        request.state.staff = found
        structlog.contextvars.bind_contextvars(staff=found.username)
    return found


def require(*roles: Role) -> Callable[[Request], Awaitable[StaffView]]:
    """A dependency giving the staff member, refusing anyone not in `roles`."""

    async def dependency(request: Request) -> StaffView:
        found = await current_staff(request)
        if found is None:
            raise LoginRequired()
        if found.role not in roles:
            raise WrongRole()
        return found

    return dependency
