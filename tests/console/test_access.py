"""Who may open what: login, roles, CSRF, sessions, headers (in-process, no browser)."""

from __future__ import annotations

from tests.console.conftest import Client, client_address


async def test_logged_out_user_goes_to_login(client: Client) -> None:
    """Every role's page sends a visitor without a session to the login page."""
    for path in ("/agent", "/counter", "/supervisor/audit", "/supervisor/staff", "/"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"


async def test_wrong_password_is_refused_in_chinese(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """A wrong password keeps the user out with one message for every failure."""
    agent = await make_staff("agent")
    await client.get("/login")
    response = await client.post("/login", {"username": agent.username, "password": "x" * 12})
    assert response.status_code == 401
    assert "用户名或密码不正确" in response.text
    assert (await client.get("/agent")).status_code == 303


async def test_each_role_lands_on_its_page_and_no_other(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """An agent gets 403 with a Chinese message on clerk and supervisor pages."""
    agent = await make_staff("agent")
    response = await client.login(agent)
    assert response.headers["location"] == "/agent"
    assert (await client.get("/agent")).status_code == 200
    for path in ("/counter", "/supervisor/audit", "/supervisor/staff"):
        refused = await client.get(path)
        assert refused.status_code == 403
        assert "您的角色（坐席）无权使用此页面" in refused.text


async def test_clerk_cannot_post_agent_forms(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """A clerk's POST to an agent action is refused before anything runs."""
    clerk = await make_staff("clerk")
    await client.login(clerk)
    response = await client.post("/agent/calls/x/check", {"card_number": "A12345678"})
    assert response.status_code == 403


async def test_post_without_csrf_token_is_refused(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """A form POST without the session's token (or with another one) changes nothing."""
    agent = await make_staff("agent")
    await client.get("/login")
    no_token = await client.post(
        "/login", {"username": agent.username, "password": agent.password}, csrf=False
    )
    assert no_token.status_code == 403
    assert "安全校验码" in no_token.text
    await client.login(agent)
    forged = await client.http.post("/logout", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    assert (await client.get("/agent")).status_code == 200


async def test_logout_ends_the_session(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """After logging out the same cookie jar is a stranger again."""
    agent = await make_staff("agent")
    await client.login(agent)
    await client.get("/agent")
    assert (await client.post("/logout", {})).status_code == 303
    assert (await client.get("/agent")).status_code == 303


async def test_deactivated_account_loses_its_session(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """Deactivating an account ends its open session and refuses its next login."""
    from backend.outcomes import Actor, Channel
    from backend.services.staff import deactivate_staff

    agent = await make_staff("agent")
    await client.login(agent)
    assert await deactivate_staff(agent.username, Actor(Channel.OPERATOR, "test"))
    assert (await client.get("/agent")).status_code == 303
    await client.get("/login")
    response = await client.post("/login", {"username": agent.username, "password": agent.password})
    assert response.status_code == 401


async def test_pages_carry_security_headers_and_strict_cookie(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """No caching, no framing, and an HttpOnly SameSite=Strict session cookie."""
    agent = await make_staff("agent")
    login = await client.login(agent)
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = await client.get("/agent")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_forged_session_cookie_is_ignored(client) -> None:  # type: ignore[no-untyped-def]
    """A cookie the console did not issue counts as no session."""
    client.http.cookies.set("ivr_console", '["n", 1, 9999999999.0].forged.sig')
    assert (await client.get("/agent")).status_code == 303


async def test_unknown_page_is_a_chinese_404(client) -> None:  # type: ignore[no-untyped-def]
    """A wrong address gets a page in Chinese, not a JSON error."""
    response = await client.get("/no-such-page")
    assert response.status_code == 404
    assert "页面不存在" in response.text


async def test_login_pauses_after_repeated_failures(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """Five wrong passwords pause the account, even for the right password."""
    agent = await make_staff("agent")
    await client.get("/login")
    for _ in range(5):
        await client.post("/login", {"username": agent.username, "password": "wrong-" + "x" * 8})
    paused = await client.post("/login", {"username": agent.username, "password": agent.password})
    assert paused.status_code == 429 and "登录失败次数过多" in paused.text


async def test_database_outage_gets_a_polite_page(client, make_staff, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """ServiceUnavailable becomes a 503 page in Chinese that says nothing changed."""
    from backend.errors import ServiceUnavailable
    from console.routes import agent as agent_routes

    async def down(_limit: int) -> None:
        raise ServiceUnavailable("the card service is unavailable; nothing was changed")

    account = await make_staff("agent")
    await client.login(account)
    monkeypatch.setattr(agent_routes, "recent_handoffs", down)
    response = await client.get("/agent")
    assert response.status_code == 503
    assert "系统暂时无法处理" in response.text and "未做任何更改" in response.text


async def test_unexpected_error_shows_no_stack_trace(make_staff, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Any other failure is a plain 500 page with the security headers, no traceback."""
    import httpx

    from console.app import create_app
    from console.routes import agent as agent_routes

    async def broken(_limit: int) -> None:
        raise RuntimeError("boom")

    account = await make_staff("agent")
    transport = httpx.ASGITransport(
        app=create_app(), raise_app_exceptions=False, client=(client_address(), 50000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        client = Client(http)
        await client.login(account)
        monkeypatch.setattr(agent_routes, "recent_handoffs", broken)
        response = await client.get("/agent")
    assert response.status_code == 500
    assert "系统出现错误" in response.text
    assert "Traceback" not in response.text and "boom" not in response.text
    assert response.headers["x-frame-options"] == "DENY"
