"""Server-side sessions and confirmation tokens in PostgreSQL: logout, deactivation and a
password change end them; timeouts; one use per token; several console processes."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, text, update

from backend.db.tables import console_pending, console_sessions
from backend.outcomes import Actor, CardState, Channel
from backend.services import common
from backend.services.cards import card_status
from backend.services.handoffs import record_handoff
from backend.services.staff import deactivate_staff, set_password
from console.app import create_app
from console.config import get_console_settings
from tests.console.conftest import Account, Client, MakeStaff, new_password, staff_id_of
from tests.console.test_agent import new_call_id

Open = Callable[..., Awaitable[Client]]
OPERATOR = Actor(Channel.OPERATOR, "test")


def session_cookie(client: Client) -> str:
    value = client.http.cookies.get("ivr_console")
    assert value
    return value


async def with_cookie(open_client: Open, cookie: str, app: object = None) -> Client:
    """Another browser carrying a copy of someone's session cookie."""
    copy = await open_client(address="198.51.100.200", app=app)
    copy.http.cookies.set("ivr_console", cookie, domain="127.0.0.1")
    return copy


async def _is_in(client: Client, path: str = "/agent") -> bool:
    response = await client.get(path)
    if response.status_code == 303:
        assert response.headers["location"] == "/login"
        return False
    assert response.status_code == 200, response.status_code
    return True


async def test_copied_cookie_is_worthless_after_logout(
    open_client: Open, make_staff: MakeStaff
) -> None:
    """A cookie copied while logged in opens nothing once its owner has logged out."""
    agent: Account = await make_staff("agent")
    owner = await open_client()
    await owner.login(agent)
    copy = await with_cookie(open_client, session_cookie(owner))
    assert await _is_in(copy)
    assert (await owner.post("/logout", {})).status_code == 303
    assert not await _is_in(copy)
    assert not await _is_in(owner)


async def test_session_row_holds_only_the_cookie_hash(
    open_client: Open, make_staff: MakeStaff, db: str
) -> None:
    """The table keeps the SHA-256 of the cookie, never the cookie; login issues a new one."""
    agent: Account = await make_staff("agent")
    browser = await open_client()
    await browser.get("/login")
    before = session_cookie(browser)
    await browser.login(agent)
    cookie = session_cookie(browser)
    assert cookie != before
    async with common.transaction() as conn:
        rows = (await conn.execute(select(console_sessions))).all()
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    assert digest in {r.token_hash for r in rows}
    assert not any(cookie in str(tuple(r)) for r in rows)


async def test_deactivation_ends_every_session(open_client: Open, make_staff: MakeStaff) -> None:
    """Both open sessions of a deactivated account end at once, and their rows are gone."""
    agent: Account = await make_staff("agent")
    first, second = await open_client(), await open_client()
    await first.login(agent)
    await second.login(agent)
    assert await deactivate_staff(agent.username, OPERATOR)
    assert not await _is_in(first) and not await _is_in(second)
    staff_id = await staff_id_of(agent.username)
    async with common.transaction() as conn:
        query = select(func.count()).where(console_sessions.c.staff_id == staff_id)
        left = (await conn.execute(query)).scalar_one()
    assert left == 0


async def test_password_change_ends_sessions(open_client: Open, make_staff: MakeStaff) -> None:
    """A password set by the operator ends the open sessions; the new password logs in."""
    clerk: Account = await make_staff("clerk")
    browser = await open_client()
    await browser.login(clerk)
    assert await _is_in(browser, "/counter")
    fresh = new_password()
    assert await set_password(clerk.username, fresh, OPERATOR)
    assert not await _is_in(browser, "/counter")
    await browser.get("/login")
    old = await browser.post("/login", {"username": clerk.username, "password": clerk.password})
    assert old.status_code == 401
    await browser.login(Account(clerk.username, fresh, "clerk"))


async def test_own_password_page(open_client: Open, make_staff: MakeStaff) -> None:
    """A logged-in user changes their password with the current one; every session of
    theirs, this one too, ends; a wrong current password changes nothing."""
    agent: Account = await make_staff("agent")
    here, there = await open_client(), await open_client()
    await here.login(agent)
    await there.login(agent)
    await here.get("/password")
    fresh = new_password()
    form = {"current": "not-" + agent.password, "new": fresh, "again": fresh}
    refused = await here.post("/password", form)
    assert refused.status_code == 400 and "当前密码不正确" in refused.text
    differ = await here.post("/password", {**form, "current": agent.password, "again": "x" * 12})
    assert differ.status_code == 400 and "不一致" in differ.text
    done = await here.post("/password", {**form, "current": agent.password})
    assert done.status_code == 200 and "密码已修改" in done.text
    assert not await _is_in(here) and not await _is_in(there)
    await here.login(Account(agent.username, fresh, "agent"))


async def _age(cookie: str, **columns: str) -> None:
    """Move a session's timestamps into the past, as if time had gone by."""
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    values = {name: text(f"{name} - interval '{amount}'") for name, amount in columns.items()}
    async with common.transaction() as conn:
        await conn.execute(
            update(console_sessions).where(console_sessions.c.token_hash == digest).values(values)
        )


async def test_idle_session_ends(open_client: Open, make_staff: MakeStaff) -> None:
    """31 minutes without a request end a session; 29 do not, and a request restarts the
    count."""
    agent: Account = await make_staff("agent")
    browser = await open_client()
    await browser.login(agent)
    await _age(session_cookie(browser), last_seen="29 minutes")
    assert await _is_in(browser)
    await _age(session_cookie(browser), last_seen="29 minutes")
    assert await _is_in(browser)
    await _age(session_cookie(browser), last_seen="31 minutes")
    assert not await _is_in(browser)


async def test_session_ends_after_a_shift_however_busy(
    open_client: Open, make_staff: MakeStaff
) -> None:
    """Ten hours after login a session ends, even with a request every minute."""
    agent: Account = await make_staff("agent")
    browser = await open_client()
    await browser.login(agent)
    await _age(session_cookie(browser), created_at="9 hours 59 minutes")
    assert await _is_in(browser)
    await _age(session_cookie(browser), created_at="2 minutes")
    assert not await _is_in(browser)


async def _checked(client: Client, card: Any, call_id: str) -> str:
    await client.get(f"/agent/calls/{call_id}")
    checked = await client.post(
        f"/agent/calls/{call_id}/check",
        {"card_number": card.card_number, "name": card.name, "id_number": card.id_number},
    )
    token = re.search(r'name="token" value="([^"]+)"', checked.text)
    assert token, checked.text
    return token.group(1)


async def test_pending_row_holds_no_id_number(
    open_client: Open, make_staff: MakeStaff, issue: Any
) -> None:
    """A check leaves the token's hash, the card and the ID's keyed hash: never the ID
    number nor the token itself."""
    agent: Account = await make_staff("agent")
    card = await issue()
    call_id = new_call_id()
    await record_handoff(call_id, "caller-asked", None, None)
    browser = await open_client()
    await browser.login(agent)
    token = await _checked(browser, card, call_id)
    async with common.transaction() as conn:
        rows = (await conn.execute(select(console_pending))).all()
    mine = [r for r in rows if r.purpose == f"call:{call_id}"]
    assert len(mine) == 1
    assert mine[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert mine[0].holder_hash == common.id_hash(card.id_number)
    for row in rows:
        stored = str(tuple(row))
        assert card.id_number not in stored and token not in stored


async def test_token_used_twice_at_once_works_once(
    open_client: Open, make_staff: MakeStaff, issue: Any
) -> None:
    """Ten concurrent confirmations with one token, through two console processes: one
    files the report, nine are told the check has expired."""
    agent: Account = await make_staff("agent")
    card = await issue()
    call_id = new_call_id()
    await record_handoff(call_id, "caller-asked", None, None)
    first = await open_client()
    await first.login(agent)
    token = await _checked(first, card, call_id)
    other_app = create_app()
    second = await with_cookie(open_client, session_cookie(first), app=other_app)
    second.csrf = first.csrf
    posts = [
        (first if i % 2 else second).post(f"/agent/calls/{call_id}/report", {"token": token})
        for i in range(10)
    ]
    statuses = sorted(r.status_code for r in await asyncio.gather(*posts))
    assert statuses == [200] + [409] * 9
    assert (await card_status(card.card_number)).state == CardState.LOST_TEMPORARY


async def test_two_console_processes_share_sessions_and_tokens(
    open_client: Open, make_staff: MakeStaff, issue: Any
) -> None:
    """Log in on one app, check on it, confirm on another app over the same database,
    then log out on the second: the first no longer knows the session."""
    clerk: Account = await make_staff("clerk")
    card = await issue()
    app_a, app_b = create_app(), create_app()
    on_a = await open_client(app=app_a)
    await on_a.login(clerk)
    await on_a.get("/counter")
    confirm = await on_a.post(
        "/counter/check",
        {
            "action": "reset-pin",
            "card_number": card.card_number,
            "name": card.name,
            "id_number": card.id_number,
        },
    )
    token = re.search(r'name="token" value="([^"]+)"', confirm.text)
    assert token
    on_b = await with_cookie(open_client, session_cookie(on_a), app=app_b)
    assert await _is_in(on_b, "/counter")
    done = await on_b.post("/counter/confirm", {"action": "reset-pin", "token": token.group(1)})
    assert done.status_code == 200 and "密码已重置为初始密码" in done.text
    await on_b.post("/logout", {})
    assert not await _is_in(on_a, "/counter")


async def test_password_page_limits_guesses_of_the_current_password(
    open_client: Open, make_staff: MakeStaff
) -> None:
    """Someone at an unlocked PC cannot guess the current password: after the limit of
    wrong ones even the right one is refused for a while, and nothing changed."""
    clerk: Account = await make_staff("clerk")
    browser = await open_client()
    await browser.login(clerk)
    await browser.get("/password")
    fresh = new_password()
    limit = get_console_settings().login_attempts
    for _ in range(limit):
        form = {"current": "guess-" + new_password(), "new": fresh, "again": fresh}
        assert (await browser.post("/password", form)).status_code == 400
    right = {"current": clerk.password, "new": fresh, "again": fresh}
    paused = await browser.post("/password", right)
    assert paused.status_code == 429 and "输错次数过多" in paused.text
    assert await _is_in(browser, "/counter")
    other = await open_client()
    await other.login(clerk)
