"""One typed settings object, read from the environment (prefix `IVR_`) and an optional file.

The file is `ivr12333.env` in the working directory, or the path in `IVR_ENV_FILE`.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Used only when IVR_ENV is dev or test; production refuses to start without its own.
DEV_PEPPER = "dev-only-pepper-not-for-production"


def _parse_sessions(text: str) -> list[tuple[dt.time, dt.time]]:
    sessions = []
    for part in text.split(","):
        start_s, _, end_s = part.strip().partition("-")
        start, end = dt.time.fromisoformat(start_s.strip()), dt.time.fromisoformat(end_s.strip())
        if end <= start:
            raise ValueError(f"office session {part!r} ends before it starts")
        sessions.append((start, end))
    return sessions


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVR_",
        env_file=os.environ.get("IVR_ENV_FILE", "ivr12333.env"),
        extra="ignore",
    )

    env: Literal["dev", "test", "prod"] = "dev"
    # Unset: the project's own local cluster under `data_dir`.
    database_url: str | None = None
    data_dir: Path = PROJECT_ROOT / ".local"
    pg_port: int = 54333
    pin_pepper: SecretStr | None = None
    # argon2id cost, tuned to about 10-30 ms a check on a 2-core machine.
    pin_hash_time_cost: int = 2
    pin_hash_memory_kib: int = 12288
    # Staff passwords: argon2-cffi's defaults (RFC 9106's low-memory profile); tests lower them.
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65536, ge=8192, le=1048576)
    # Hash jobs queued or running in one process before more of a kind are refused at once;
    # anonymous logins get few, so a flood of them can never starve callers' PIN checks.
    pin_hash_queue_limit: int = Field(default=64, ge=1, le=10000)
    password_hash_queue_limit: int = Field(default=4, ge=1, le=1000)
    lockout_limit: int = Field(default=6, ge=1, le=20)
    loss_report_valid_working_days: int = Field(default=5, ge=1, le=60)
    timezone: str = "Asia/Shanghai"
    # Weekday sessions of the agents; public holidays are off, make-up workdays are on.
    office_hours: str = "09:00-12:00,13:30-17:00"
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    console_host: str = "127.0.0.1"
    console_port: int = 8333
    # Dev and tests only: pretend it is this moment (office hours, report expiry).
    now_override: dt.datetime | None = None
    log_file: Path | None = None
    log_level: str = "info"

    @field_validator("office_hours")
    @classmethod
    def _valid_sessions(cls, value: str) -> str:
        _parse_sessions(value)
        return value

    @model_validator(mode="after")
    def _pepper_outside_dev(self) -> Settings:
        if self.pin_pepper is None:
            if self.env == "prod":
                raise ValueError("IVR_PIN_PEPPER is required when IVR_ENV=prod")
            self.pin_pepper = SecretStr(DEV_PEPPER)
        if self.now_override is not None:
            if self.env == "prod":
                raise ValueError("IVR_NOW_OVERRIDE is for development and tests only")
            if self.now_override.tzinfo is None:
                raise ValueError("IVR_NOW_OVERRIDE needs a time zone, e.g. +08:00")
        return self

    @property
    def office_sessions(self) -> list[tuple[dt.time, dt.time]]:
        return _parse_sessions(self.office_hours)

    @property
    def pepper_bytes(self) -> bytes:
        assert self.pin_pepper is not None
        return self.pin_pepper.get_secret_value().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
