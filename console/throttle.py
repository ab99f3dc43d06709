"""Limits on login attempts, reserved in PostgreSQL before the password is hashed.

A browser the account has logged in from before (its device cookie, console/devices.py)
draws on its own budget only. Any other browser draws on two: its client address (every
username it tries) and the account (every such browser). Each budget is an attempt counter
(backend/services/attempts.py): one conditional upsert counts the attempt before the slow
check, so concurrent logins cannot pass a limit, and a success gives it back. Budgets are
reserved together or not at all, and they are shared by every console process.

The client address is the peer of the connection, unless that peer is a trusted proxy
(`trusted_proxies`): then the nearest X-Forwarded-For entry the proxies did not add.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

import structlog
from fastapi import Request

from backend.outcomes import Actor, Channel
from backend.services import attempts, common
from backend.services.attempts import Limit, Reservation
from console.config import Network, get_console_settings

log = structlog.get_logger(__name__)
CONSOLE = Actor(Channel.OPERATOR, "console")


class _Full(Exception):
    """A budget is full: undo the reservations made before it."""


def _limits() -> tuple[Limit, Limit, Limit]:
    s = get_console_settings()
    window = dt.timedelta(minutes=s.login_pause_minutes)
    return (
        Limit("console-login-device", s.login_attempts, window),
        Limit("console-login-address", s.login_address_attempts, window),
        Limit("console-login-account", s.login_attempts, window),
    )


def pause_seconds() -> int:
    return get_console_settings().login_pause_minutes * 60


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    proxies = get_console_settings().proxy_networks
    if not _within(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    # Right to left: each trusted proxy appended the address it received from.
    for hop in reversed(hops):
        if not _within(hop, proxies):
            return hop
        peer = hop
    return peer


async def reserve(
    conn_limits: Sequence[tuple[Limit, str]],
) -> list[Reservation] | None:
    """One attempt in each budget, or in none (None: a budget is full)."""
    taken: list[Reservation] = []
    try:
        async with common.transaction() as conn:
            for limit, value in conn_limits:
                reservation = await attempts.reserve(conn, limit, value)
                if reservation is None:
                    raise _Full()
                if reservation.reached_limit:
                    # Once per budget and window: supervisors see guessing in the audit
                    # trail. Nothing typed goes with it (a username may be a password).
                    detail = {"budget": limit.scope, "attempts": limit.attempts}
                    await common.audit(conn, CONSOLE, "login-limit", "limit-reached", None, detail)
                    log.warning("login_limit_reached", scope=limit.scope)
                taken.append(reservation)
    except _Full:
        return None
    return taken


async def reserve_login(
    username: str, address: str, device: str | None
) -> list[Reservation] | None:
    """Reserve a login attempt: for a trusted browser (`device`, its key) on its own budget,
    otherwise on the address's and the account's."""
    per_device, per_address, per_account = _limits()
    if device is not None:
        return await reserve([(per_device, device)])
    return await reserve([(per_address, address), (per_account, username.strip().lower())])


async def reserve_password_check(staff_id: int) -> list[Reservation] | None:
    """A logged-in user proving their current password: the account's own budget."""
    _, _, per_account = _limits()
    return await reserve([(per_account, f"staff-id:{staff_id}")])


async def give_back(reservations: Sequence[Reservation]) -> None:
    """The attempt succeeded (or never ran): it does not count."""
    async with common.transaction() as conn:
        for reservation in reservations:
            await attempts.give_back(conn, reservation)
