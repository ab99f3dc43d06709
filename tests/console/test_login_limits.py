"""Login limits under concurrency: per account, per client address, per trusted device, and
a bounded hash pool (in-process app, real PostgreSQL, concurrent requests)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from backend import secrethash
from backend.db.tables import audit_events
from backend.services import common
from backend.settings import get_settings
from console.config import get_console_settings
from tests.console.conftest import Account, Client, MakeStaff

Open = Callable[..., Awaitable[Client]]


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every password check that really ran (a hash refused as busy is not one)."""
    ran: list[bool] = []
    real = secrethash.password_matches

    async def counting(stored: str, password: str) -> bool:
        matched = await real(stored, password)
        ran.append(matched)
        return matched

    monkeypatch.setattr(secrethash, "password_matches", counting)
    return ran


@pytest.fixture
def roomy_hash_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue long enough that only the login limits, not the pool, can refuse a check."""
    monkeypatch.setattr(get_settings(), "password_hash_queue_limit", 200)


async def _ready(open_client: Open, count: int, address: str) -> list[Client]:
    """`count` browsers that have each loaded the login page (cookie and CSRF token)."""
    browsers = [await open_client(address=address) for _ in range(count)]
    for browser in browsers:
        await browser.get("/login")
    return browsers


async def _attempt(browser: Client, username: str, password: str) -> httpx.Response:
    return await browser.post("/login", {"username": username, "password": password})


async def _limit_alarms() -> Counter[str]:
    """Login budgets filled so far, by budget, from the audit trail."""
    query = select(audit_events.c.detail["budget"].astext).where(
        audit_events.c.action == "login-limit"
    )
    async with common.transaction() as conn:
        return Counter((await conn.execute(query)).scalars())


def wrong() -> str:
    return "wrong-" + secrets.token_hex(6)


async def test_concurrent_logins_to_one_account_check_at_most_the_limit(
    open_client: Open, make_staff: MakeStaff, checks: list[bool], roomy_hash_queue: None
) -> None:
    """40 logins at once to one account, the right password 35th: at most the limit is
    checked; the rest are refused at once, before any hash."""
    agent: Account = await make_staff("agent")
    limit = get_console_settings().login_attempts
    browsers = await _ready(open_client, 40, "198.51.100.10")
    alarms_before = await _limit_alarms()
    passwords = [wrong() for _ in range(40)]
    passwords[34] = agent.password
    answers = await asyncio.gather(
        *(_attempt(b, agent.username, p) for b, p in zip(browsers, passwords, strict=True))
    )
    statuses = [a.status_code for a in answers]
    # A right password checked gives its try back (a success resets the count), so one
    # more concurrent guess may then be checked: the limit bounds the wrong ones.
    assert checks.count(False) <= limit, f"{checks.count(False)} wrong passwords checked"
    assert len(checks) <= limit + checks.count(True)
    assert statuses.count(429) >= 40 - limit
    assert all(s in (303, 401, 429) for s in statuses), statuses
    # The right password logs in only if it was one of the few checked.
    assert (statuses[34] == 303) == (True in checks)
    # One alarm for the account's budget, none for the address's (5 of 20 used).
    assert await _limit_alarms() - alarms_before == Counter({"console-login-account": 1})


async def test_one_address_cannot_try_many_accounts(
    open_client: Open, make_staff: MakeStaff, checks: list[bool], roomy_hash_queue: None
) -> None:
    """20 usernames x 4 wrong guesses from one address: the address limit stops the spray
    long before 80 checks; another address still logs in."""
    accounts = [await make_staff("agent") for _ in range(20)]
    address_limit = get_console_settings().login_address_attempts
    sprayer = await open_client(address="203.0.113.66")
    await sprayer.get("/login")
    statuses = []
    for _ in range(4):
        guesses = [_attempt(sprayer, a.username, wrong()) for a in accounts]
        statuses += [r.status_code for r in await asyncio.gather(*guesses)]
    assert len(checks) <= address_limit, f"{len(checks)} passwords checked"
    assert statuses.count(429) >= 80 - address_limit
    # The guessed accounts themselves are not paused for everyone: at most four misses each.
    colleague = await open_client(address="192.0.2.20")
    await colleague.login(accounts[0])


async def test_device_cookie_holder_logs_in_while_the_account_is_paused(
    open_client: Open, make_staff: MakeStaff
) -> None:
    """An attacker pauses an account for untrusted browsers; its owner, whose browser holds
    the device cookie from an earlier login, still logs in with the right password."""
    clerk: Account = await make_staff("clerk")
    owner = await open_client(address="192.0.2.30")
    await owner.login(clerk)
    assert any(c.name == "ivr_device" for c in owner.http.cookies.jar)
    await owner.post("/logout", {})

    attacker = await open_client(address="198.51.100.99")
    await attacker.get("/login")
    for _ in range(get_console_settings().login_attempts):
        assert (await _attempt(attacker, clerk.username, wrong())).status_code == 401
    paused = await _attempt(attacker, clerk.username, clerk.password)
    assert paused.status_code == 429 and "登录失败次数过多" in paused.text

    await owner.get("/login")
    back = await _attempt(owner, clerk.username, clerk.password)
    assert back.status_code == 303 and back.headers["location"] == "/counter"
    # A new browser of the owner's (no device cookie) is paused like the attacker.
    elsewhere = await open_client(address="192.0.2.31")
    await elsewhere.get("/login")
    assert (await _attempt(elsewhere, clerk.username, clerk.password)).status_code == 429


async def test_device_cookie_has_its_own_limit(open_client: Open, make_staff: MakeStaff) -> None:
    """A stolen device cookie buys no extra guesses: its holder is paused after the same
    number of misses, and the cookie serves only the account it was issued for."""
    agent: Account = await make_staff("agent")
    other: Account = await make_staff("agent")
    browser = await open_client(address="192.0.2.40")
    await browser.login(agent)
    await browser.post("/logout", {})
    await browser.get("/login")
    limit = get_console_settings().login_attempts
    for _ in range(limit):
        assert (await _attempt(browser, agent.username, wrong())).status_code == 401
    assert (await _attempt(browser, agent.username, agent.password)).status_code == 429
    # The same cookie is an untrusted browser for another account: its own count, unpaused.
    await browser.login(other)


async def test_flood_is_refused_without_hashing(
    open_client: Open, make_staff: MakeStaff, checks: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 logins at once from 60 addresses to 60 accounts, with slow hashes: no more hashes
    than the queue limit at a time, and every refused login ran none (503 page, retry)."""
    queue_limit = get_settings().password_hash_queue_limit
    running, most = 0, 0
    lock = threading.Lock()
    real_matches = secrethash._matches

    def slow_matches(hasher: PasswordHasher, stored: str, secret: bytes | str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return real_matches(hasher, stored, secret)

    monkeypatch.setattr(secrethash, "_matches", slow_matches)
    accounts = [await make_staff("clerk") for _ in range(60)]
    browsers = [(await _ready(open_client, 1, f"10.9.0.{i + 1}"))[0] for i in range(60)]
    answers = await asyncio.gather(
        *(_attempt(b, a.username, wrong()) for b, a in zip(browsers, accounts, strict=True))
    )
    statuses = [a.status_code for a in answers]
    busy = [a for a in answers if a.status_code == 503]
    assert busy, statuses
    assert most <= queue_limit
    assert len(checks) == statuses.count(401)
    assert len(checks) + len(busy) == 60
    for page in busy:
        assert "登录人数较多" in page.text and 'action="/login"' in page.text
        assert int(page.headers["retry-after"]) >= 1
    # A busy answer is not a guess: the account's budget is untouched.
    await browsers[0].get("/login")
    assert (await browsers[0].login(accounts[0])).status_code == 303
