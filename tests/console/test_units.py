"""Sessions, confirmation tokens and the client address, without a database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from backend.services.common import IdHash
from console import sessions, throttle
from console.config import ConsoleSettings, get_console_settings
from console.pending import Pending


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 40000), "headers": headers})


@pytest.fixture
def proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IVR_CONSOLE_TRUSTED_PROXIES", "10.0.0.5, 192.168.7.0/24")
    get_console_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_console_settings.cache_clear()


def test_client_address_ignores_forwarded_for_without_trusted_proxies() -> None:
    """With no trusted proxy, X-Forwarded-For is whatever the client wrote: ignored."""
    assert get_console_settings().proxy_networks == ()
    assert throttle.client_address(_request("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_client_address_behind_trusted_proxies(proxies: None) -> None:
    """Behind trusted proxies the nearest address they did not add is the client; what the
    client itself wrote further left is not believed."""
    assert throttle.client_address(_request("10.0.0.5", "1.2.3.4, 198.51.100.7")) == (
        "198.51.100.7"
    )
    two_hops = _request("10.0.0.5", "1.2.3.4, 198.51.100.7", "192.168.7.20")
    assert throttle.client_address(two_hops) == "198.51.100.7"
    # A peer that is not a trusted proxy is the client, whatever it claims.
    assert throttle.client_address(_request("203.0.113.9", "10.0.0.5")) == "203.0.113.9"
    # Only proxies in the header: the farthest proxy is the client.
    assert throttle.client_address(_request("10.0.0.5", "192.168.7.3")) == "192.168.7.3"


def test_trusted_proxies_must_be_addresses() -> None:
    """A typo in the proxy list stops the console at start-up, without echoing the value."""
    with pytest.raises(ValidationError) as caught:
        ConsoleSettings(trusted_proxies="10.0.0.5, proxy.example")
    assert "proxy.example" not in str(caught.value.errors(include_input=False))


def test_console_settings_have_no_secret() -> None:
    """Nothing to sign with: the settings hold no secret, so none can be a default."""
    assert not any("secret" in name for name in ConsoleSettings.model_fields)


def test_anonymous_csrf_is_stable_per_browser_and_not_the_token() -> None:
    """Before login the CSRF token follows the browser's cookie, and does not reveal it."""
    first = sessions.anonymous()
    again = sessions.anonymous(first.token)
    assert again.csrf == first.csrf != sessions.anonymous().csrf
    assert first.token not in first.csrf
    assert sessions.well_formed(first.token)
    assert not sessions.well_formed("WyJub25jZSIsIDFd.forged.sig")


def test_reprs_hold_no_token_or_number() -> None:
    """A session or a pending holder in a log line or a traceback shows nothing secret."""
    session = sessions.anonymous()
    assert session.token not in repr(session) and session.csrf not in repr(session)
    held = Pending("A12345678", "A****5678", IdHash("f" * 64))
    assert "12345678" not in repr(held) and "f" * 64 not in repr(held)
