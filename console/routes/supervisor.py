"""The supervisor's screens: the audit trail and the staff accounts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from backend.errors import InvalidInput
from backend.services.audit_query import AuditFilter, distinct_values, search_audit
from backend.services.staff import (
    Role,
    StaffView,
    create_staff,
    deactivate_staff,
    list_staff,
)
from backend.settings import get_settings
from console import messages
from console.auth import require
from console.templating import render

router = APIRouter(prefix="/supervisor")
Supervisor = Annotated[StaffView, Depends(require(Role.SUPERVISOR))]

FILTER_KEYS = ("card", "actor", "channel", "action", "outcome", "since", "until")


def _local(text: str) -> dt.datetime | None:
    """A `datetime-local` field, read in the service's time zone; None if empty or invalid."""
    if not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value.replace(tzinfo=ZoneInfo(get_settings().timezone))


@router.get("")
async def start(_supervisor: Supervisor) -> Response:
    return RedirectResponse("/supervisor/audit", status_code=303)


@router.get("/audit")
async def audit(
    request: Request,
    _supervisor: Supervisor,
    card: Annotated[str, Query()] = "",
    actor: Annotated[str, Query()] = "",
    channel: Annotated[str, Query()] = "",
    action: Annotated[str, Query()] = "",
    outcome: Annotated[str, Query()] = "",
    since: Annotated[str, Query()] = "",
    until: Annotated[str, Query()] = "",
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    values = {
        "card": card.strip(),
        "actor": actor.strip(),
        "channel": channel,
        "action": action,
        "outcome": outcome,
        "since": since,
        "until": until,
    }
    wanted = AuditFilter(
        card=values["card"] or None,
        actor=values["actor"] or None,
        channel=channel or None,
        action=action or None,
        outcome=outcome or None,
        since=_local(since),
        until=_local(until),
    )
    found = await search_audit(wanted, page)
    kept = {k: v for k, v in values.items() if v}
    context = {
        "filters": values,
        "found": found,
        "channels": messages.CHANNELS,
        "actions": await distinct_values("action"),
        "outcomes": await distinct_values("outcome"),
        "staff_list": await list_staff(),
        "prev_query": urlencode({**kept, "page": page - 1}) if page > 1 else None,
        "next_query": urlencode({**kept, "page": page + 1}) if page < found.pages else None,
    }
    return render(request, "supervisor/audit.html", context)


async def _staff_page(request: Request, status_code: int = 200, **context: object) -> Response:
    values = {"accounts": await list_staff(), "roles": messages.ROLE_NAMES, **context}
    return render(request, "supervisor/staff.html", values, status_code)


@router.get("/staff")
async def staff_page(request: Request, _supervisor: Supervisor) -> Response:
    return await _staff_page(request)


@router.post("/staff")
async def create(
    request: Request,
    supervisor: Supervisor,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    password_again: Annotated[str, Form()] = "",
) -> Response:
    typed = {"username": username.strip(), "display_name": display_name.strip(), "role": role}
    if password != password_again:
        return await _staff_page(request, 400, error="两次输入的密码不一致。", typed=typed)
    try:
        made = await create_staff(username, display_name, role, password, supervisor.actor)
    except InvalidInput as exc:
        return await _staff_page(request, 400, error=messages.invalid_input(exc), typed=typed)
    role_name = messages.ROLE_NAMES[str(made.role)]
    return await _staff_page(request, 200, notice=f"已创建{role_name}账号 {made.username}。")


@router.post("/staff/{username}/deactivate")
async def deactivate(request: Request, username: str, supervisor: Supervisor) -> Response:
    # Compared as the backend reads names; the database also refuses the supervisor's own id.
    name = username.strip().lower()
    if name == supervisor.username:
        return await _staff_page(request, 400, error="不能停用自己的账号。")
    if await deactivate_staff(name, supervisor.actor, keep_staff_id=supervisor.staff_id):
        return await _staff_page(request, 200, notice=f"账号 {name} 已停用。")
    return await _staff_page(request, 404, error="没有这个在用的账号。")
