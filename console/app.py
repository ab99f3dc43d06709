"""The console's FastAPI application: middleware, error pages and the routers per role."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from backend.errors import ServiceUnavailable
from console import security, sessions
from console.auth import LoginRequired, WrongRole, current_staff
from console.config import get_console_settings
from console.csrf import CsrfRefused, csrf_protect
from console.messages import ROLE_NAMES, UNAVAILABLE
from console.routes import agent, counter, health, home, supervisor, wallboard
from console.templating import render

log = structlog.get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

Handler = Callable[[Request], Awaitable[Response]]


async def _session_and_headers(request: Request, call_next: Handler) -> Response:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=uuid.uuid4().hex[:12])
    started = time.perf_counter()
    # The session itself is looked up by the routers' first dependency (console.sessions);
    # a page that starts, replaces or ends one leaves the new cookie value here.
    request.state.cookie_out = None
    response = await call_next(request)
    if not request.url.path.startswith("/static/"):
        security.apply(response.headers)
        if request.state.cookie_out is not None:
            response.set_cookie(
                sessions.COOKIE,
                request.state.cookie_out,
                httponly=True,
                samesite="strict",
                secure=bool(get_console_settings().secure_cookies),
                path="/",
            )
    # The path only: query strings may hold a card number someone searched for.
    log.info(
        "request",
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return response


async def _login_required(request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/login", status_code=303)


async def _staff_if_known(request: Request) -> None:
    """Look the staff member up for an error page's header, unless the database is out:
    the page is shown either way."""
    with contextlib.suppress(ServiceUnavailable):
        await current_staff(request)


async def _wrong_role(request: Request, _exc: Exception) -> Response:
    await _staff_if_known(request)
    found = getattr(request.state, "staff", None)
    role = ROLE_NAMES.get(str(found.role), "") if found else ""
    log.warning("wrong_role", path=request.url.path)
    message = f"您的角色（{role}）无权使用此页面。" if role else "您无权使用此页面。"
    return render(request, "error.html", {"title": "无权访问", "message": message}, 403)


async def _csrf_refused(request: Request, _exc: Exception) -> Response:
    log.warning("csrf_refused", path=request.url.path)
    message = "请求无效或页面已过期（缺少安全校验码）。请返回页面刷新后重新操作。"
    await _staff_if_known(request)
    return render(request, "error.html", {"title": "请求被拒绝", "message": message}, 403)


async def _unavailable(request: Request, exc: Exception) -> Response:
    # Expected during a database outage: a warning, no traceback, a page that says so.
    log.warning("service_unavailable", reason=str(exc), path=request.url.path)
    context = {"title": "系统暂时不可用", "message": UNAVAILABLE}
    response = render(request, "error.html", context, 503)
    response.headers["Retry-After"] = "5"
    return response


async def _bad_request(request: Request, _exc: Exception) -> Response:
    await _staff_if_known(request)
    message = "请求内容不完整或格式不正确，请返回页面重新填写。"
    return render(request, "error.html", {"title": "请求有误", "message": message}, 400)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    titles = {404: "页面不存在", 405: "不支持的请求方式"}
    title = titles.get(status, "请求未能完成")
    await _staff_if_known(request)
    return render(request, "error.html", {"title": title, "message": title}, status)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The class only: a message or traceback could carry what was typed into a form.
    log.error("server_error", error=type(exc).__name__, path=request.url.path)
    message = "系统出现错误，本次操作可能未完成。请稍后重试，或联系系统管理员。"
    response = render(request, "error.html", {"title": "系统错误", "message": message}, 500)
    # This handler runs outside the middleware that adds the headers.
    security.apply(response.headers)
    return response


def create_app() -> FastAPI:
    get_console_settings()  # invalid settings fail here, not on the first request
    app = FastAPI(title="12333 工作台", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(_session_and_headers)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(WrongRole, _wrong_role)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    # Every database step (the session's included) fails as ServiceUnavailable.
    app.add_exception_handler(ServiceUnavailable, _unavailable)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
    protected = [Depends(csrf_protect)]
    for module in (home, agent, counter, supervisor, wallboard):
        app.include_router(module.router, dependencies=protected)
    # Probes and Prometheus: no session, no login.
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
