"""Sessions, confirmation tokens and the login pause, without a database."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from console import sessions
from console.config import ConsoleSettings
from console.pending import PendingStore
from console.throttle import LoginThrottle


@pytest.fixture
def settings() -> ConsoleSettings:
    return ConsoleSettings(
        secret=SecretStr("unit-test-secret-" + "x" * 16), idle_minutes=30, max_hours=10
    )


def test_session_round_trip_and_forgery(settings: ConsoleSettings) -> None:
    """A signed session reads back; a changed byte or another secret gives a stranger."""
    session = sessions.logged_in(42)
    cookie = sessions.dump(session, settings)
    assert sessions.load(cookie, settings) == session
    tampered = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
    assert sessions.load(tampered, settings).staff_id is None
    other = ConsoleSettings(secret=SecretStr("another-secret-" + "y" * 16))
    assert sessions.load(cookie, other).staff_id is None


def test_session_ends_after_idle_time_and_after_a_shift(
    settings: ConsoleSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No request for idle_minutes, or max_hours since login, and the session is gone."""
    cookie = sessions.dump(sessions.logged_in(7), settings)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 31 * 60)
    assert sessions.load(cookie, settings).staff_id is None
    old = sessions.Session(nonce="n", staff_id=7, since=now - 11 * 3600)
    monkeypatch.setattr(time, "time", lambda: now)
    assert sessions.load(sessions.dump(old, settings), settings).staff_id is None


def test_login_rotates_the_nonce() -> None:
    """The nonce (and so the CSRF token) before login is not the one after it."""
    assert sessions.anonymous().nonce != sessions.logged_in(1).nonce


def test_pending_token_is_for_one_staff_one_purpose_once() -> None:
    """Another user, another purpose or a second use finds nothing."""
    store = PendingStore(ttl_seconds=60)
    token = store.put("clerk1", "counter:unlock", "A12345678", "id-number-here", "A****5678")
    assert store.peek(token, "clerk2", "counter:unlock") is None
    assert store.peek(token, "clerk1", "counter:reset-pin") is None
    held = store.take(token, "clerk1", "counter:unlock")
    assert held is not None and "id-number-here" not in repr(held)
    assert store.take(token, "clerk1", "counter:unlock") is None


def test_pending_token_expires() -> None:
    """A token older than its lifetime is gone."""
    store = PendingStore(ttl_seconds=0)
    token = store.put("agent1", "call:1", "A12345678", "x", "A****5678")
    assert store.take(token, "agent1", "call:1") is None


def test_throttle_pauses_and_forgives() -> None:
    """Too many failures pause a username; a success clears its count."""
    throttle = LoginThrottle(attempts=2, pause_seconds=60)
    throttle.failed("a")
    assert not throttle.paused("a")
    throttle.failed("a")
    assert throttle.paused("a") and not throttle.paused("b")
    throttle.succeeded("a")
    assert not throttle.paused("a")
