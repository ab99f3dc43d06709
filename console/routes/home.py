"""Login, logout, the own-password page, and the start page of each role."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from backend.errors import InvalidInput
from backend.secrethash import HashingBusy
from backend.services.staff import (
    Role,
    StaffView,
    authenticate,
    change_password,
    check_password,
)
from console import devices, sessions, throttle
from console.auth import current_staff, require
from console.config import get_console_settings
from console.messages import invalid_input
from console.templating import render

log = structlog.get_logger(__name__)
router = APIRouter()
Anyone = Annotated[StaffView, Depends(require(Role.AGENT, Role.CLERK, Role.SUPERVISOR))]

START_PAGES = {Role.AGENT: "/agent", Role.CLERK: "/counter", Role.SUPERVISOR: "/supervisor/audit"}

FAILED = "用户名或密码不正确，或账号已停用。"
PAUSED = "登录失败次数过多，暂时不能在此登录，请稍后再试或联系主管。"
BUSY = "登录人数较多，系统正忙，请稍等几秒后再试。"
BUSY_SECONDS = 5


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


def _refused(request: Request, message: str, status: int, retry_after: int) -> Response:
    response = render(request, "login.html", {"error": message}, status)
    response.headers["Retry-After"] = str(retry_after)
    return response


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    # What was typed as a username is neither logged nor shown again: people do type
    # their password into the wrong field. The audit trail names known accounts.
    device_cookie = request.cookies.get(devices.COOKIE)
    device = await devices.trusted(device_cookie, username)
    reserved = await throttle.reserve_login(username, throttle.client_address(request), device)
    if reserved is None:
        log.warning("login_paused", trusted_device=device is not None)
        return _refused(request, PAUSED, 429, throttle.pause_seconds())
    try:
        found = await authenticate(username, password)
    except HashingBusy:
        # Refused before any hash ran: not a guess, so it does not count.
        await throttle.give_back(reserved)
        log.warning("login_busy")
        return _refused(request, BUSY, 503, BUSY_SECONDS)
    if found is None:
        log.info("login_failed", trusted_device=device is not None)
        return render(request, "login.html", {"error": FAILED}, 401)
    await throttle.give_back(reserved)
    await sessions.start(request, found)
    device_token = await devices.remember(device_cookie, found.staff_id)
    log.info("login", username=found.username, role=str(found.role))
    response = RedirectResponse(START_PAGES[found.role], status_code=303)
    response.set_cookie(
        devices.COOKIE,
        device_token,
        max_age=get_console_settings().device_days * 86400,
        path=devices.PATH,
        httponly=True,
        samesite="strict",
        secure=bool(get_console_settings().secure_cookies),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await current_staff(request)  # binds the username to the log line
    await sessions.end(request)
    log.info("logout")
    return RedirectResponse("/login", status_code=303)


@router.get("/password")
async def password_page(request: Request, _who: Anyone) -> Response:
    return render(request, "password.html")


@router.post("/password")
async def password_change(
    request: Request,
    who: Anyone,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    again: Annotated[str, Form()] = "",
) -> Response:
    if new != again:
        return render(request, "password.html", {"error": "两次输入的新密码不一致。"}, 400)
    try:
        check_password(new)
    except InvalidInput as exc:
        return render(request, "password.html", {"error": invalid_input(exc)}, 400)
    reserved = await throttle.reserve_password_check(who.staff_id)
    if reserved is None:
        error = "当前密码输错次数过多，请稍后再试。"
        response = render(request, "password.html", {"error": error}, 429)
        response.headers["Retry-After"] = str(throttle.pause_seconds())
        return response
    try:
        changed = await change_password(who.staff_id, current, new)
    except HashingBusy:
        await throttle.give_back(reserved)
        return _busy_password(request)
    if not changed:
        error = "当前密码不正确，密码未修改。"
        return render(request, "password.html", {"error": error}, 400)
    await throttle.give_back(reserved)
    # Every session of this account has ended, this one too: log in with the new password.
    await sessions.end(request)
    request.state.staff = None
    log.info("password_changed", username=who.username)
    notice = "密码已修改。您的所有登录均已退出，请用新密码重新登录。"
    return render(request, "login.html", {"notice": notice})


def _busy_password(request: Request) -> Response:
    response = render(request, "password.html", {"error": BUSY}, 503)
    response.headers["Retry-After"] = str(BUSY_SECONDS)
    return response
