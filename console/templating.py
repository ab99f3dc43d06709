"""Jinja2 pages: every page gets the staff member, the CSRF token and the word helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from backend.settings import get_settings
from console import messages
from console.csrf import FIELD

TEMPLATES = Path(__file__).resolve().parent / "templates"

templates = Jinja2Templates(directory=str(TEMPLATES))


def local_time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["local_time"] = local_time
templates.env.globals.update(
    role_name=lambda role: messages.ROLE_NAMES.get(str(role), str(role)),
    card_state=messages.card_state,
    reason=messages.reason,
    channel_name=lambda code: messages.CHANNELS.get(code, code),
    csrf_field=FIELD,
)


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    # Every router loads the session first; a page made without one has no form to protect.
    session = getattr(request.state, "session", None)
    values = {
        "staff": getattr(request.state, "staff", None),
        "csrf_token": session.csrf if session else "",
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, values, status_code=status_code)
