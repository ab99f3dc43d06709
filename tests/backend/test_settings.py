"""Settings: production needs its own pepper, office hours and limits are validated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from backend.settings import DEV_PEPPER, Settings, get_settings, reset_settings


def settings_of(**values: Any) -> Settings:
    """Settings from these values and the environment, never from an env file."""
    return Settings(**{"_env_file": None, **values})


@pytest.fixture
def no_pepper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment without IVR_PIN_PEPPER (restored afterwards)."""
    monkeypatch.delenv("IVR_PIN_PEPPER", raising=False)
    yield
    monkeypatch.undo()


def test_production_refuses_to_start_without_a_pepper(no_pepper: None) -> None:
    """IVR_ENV=prod without IVR_PIN_PEPPER is a configuration error."""
    with pytest.raises(ValidationError, match="IVR_PIN_PEPPER"):
        settings_of(env="prod")


def test_production_with_a_pepper(no_pepper: None) -> None:
    """With its own pepper production starts and uses it."""
    settings = settings_of(env="prod", pin_pepper="p" * 32)
    assert settings.pepper_bytes == b"p" * 32


def test_development_falls_back_to_the_dev_pepper(no_pepper: None) -> None:
    """Dev and test get a fixed pepper so that they start without configuration."""
    for env in ("dev", "test"):
        assert settings_of(env=env).pepper_bytes == DEV_PEPPER.encode()


def test_pepper_is_not_shown(no_pepper: None) -> None:
    """The pepper is a secret: the settings' repr does not contain it."""
    settings = settings_of(env="prod", pin_pepper="very-secret-pepper-value")
    assert "very-secret-pepper-value" not in repr(settings)


def test_office_hours_are_parsed() -> None:
    """Sessions are comma-separated start-end pairs."""
    settings = settings_of(office_hours=" 08:00-11:30 ,13:00-17:45")
    assert settings.office_sessions == [
        (dt.time(8, 0), dt.time(11, 30)),
        (dt.time(13, 0), dt.time(17, 45)),
    ]


@pytest.mark.parametrize("value", ["12:00-09:00", "09:00-09:00", "9-12", "09:00", "nine-twelve"])
def test_bad_office_hours_are_refused(value: str) -> None:
    """Sessions ending before they start, or not written as times, are refused."""
    with pytest.raises(ValidationError):
        settings_of(office_hours=value)


@pytest.mark.parametrize("limit", [0, -1, 21])
def test_lockout_limit_bounds(limit: int) -> None:
    """The lockout limit stays between 1 and 20."""
    with pytest.raises(ValidationError):
        settings_of(lockout_limit=limit)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """IVR_ variables reach the cached settings after reset_settings()."""
    monkeypatch.setenv("IVR_LOCKOUT_LIMIT", "4")
    monkeypatch.setenv("IVR_LOSS_REPORT_VALID_WORKING_DAYS", "7")
    reset_settings()
    try:
        assert get_settings().lockout_limit == 4
        assert get_settings().loss_report_valid_working_days == 7
        assert get_settings() is get_settings()
    finally:
        monkeypatch.undo()
        reset_settings()
    assert get_settings().lockout_limit == 6


def test_now_override_only_outside_production() -> None:
    """A pretended time needs a time zone and is refused in production."""
    moment = dt.datetime(2026, 9, 15, 10, 0, tzinfo=dt.UTC)
    assert settings_of(now_override=moment).now_override == moment
    with pytest.raises(ValidationError, match="time zone"):
        settings_of(now_override=dt.datetime(2026, 9, 15, 10, 0))
    with pytest.raises(ValidationError, match="development"):
        settings_of(env="prod", pin_pepper="p" * 32, now_override=moment)
