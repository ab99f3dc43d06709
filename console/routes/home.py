"""Login, logout, and the start page of each role."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from backend.services.staff import Role, authenticate
from console import sessions
from console.auth import current_staff
from console.templating import render
from console.throttle import LoginThrottle

log = structlog.get_logger(__name__)
router = APIRouter()

START_PAGES = {Role.AGENT: "/agent", Role.CLERK: "/counter", Role.SUPERVISOR: "/supervisor/audit"}

FAILED = "用户名或密码不正确，或账号已停用。"
PAUSED = "登录失败次数过多，该账号暂时不能登录，请稍后再试或联系主管。"


@router.get("/")
async def start(request: Request) -> Response:
    found = await current_staff(request)
    return RedirectResponse(START_PAGES[found.role] if found else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    found = await current_staff(request)
    if found is not None:
        return RedirectResponse(START_PAGES[found.role], status_code=303)
    return render(request, "login.html")


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    throttle: LoginThrottle = request.app.state.throttle
    key = username.strip().lower()
    # What was typed as a username is neither logged nor shown again: people do type
    # their password into the wrong field. The audit trail names known accounts.
    if throttle.paused(key):
        log.warning("login_paused")
        return render(request, "login.html", {"error": PAUSED}, 429)
    found = await authenticate(username, password)
    if found is None:
        throttle.failed(key)
        log.info("login_failed")
        return render(request, "login.html", {"error": FAILED}, 401)
    throttle.succeeded(key)
    request.state.session = sessions.logged_in(found.staff_id)
    log.info("login", username=found.username, role=str(found.role))
    return RedirectResponse(START_PAGES[found.role], status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await current_staff(request)  # binds the username to the log line
    request.state.session = sessions.anonymous()
    log.info("logout")
    return RedirectResponse("/login", status_code=303)
