"""One typed settings object, read from the environment (prefix `IVR_`) and an optional file.

The file is `ivr12333.env` in the working directory, or the path in `IVR_ENV_FILE`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.localsecrets import local_secret, read_secret_file, secrets_dir

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class InsecureBind(ValueError):
    """A server was told to listen beyond this machine while using development secrets."""


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, or a name resolving only
    to those). An empty host, a wildcard or a name that does not resolve is not."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%", 1)[0] for info in found}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


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
    # May carry a password: kept out of the settings' repr (and so out of logs and errors).
    # A primary with standbys: name every node and ask for the writable one, e.g.
    # `postgresql+asyncpg://USER@/DB?host=pg1,pg2&port=5432,5432&target_session_attrs=read-write`;
    # after a switchover the next connection finds the new primary, with no restart.
    database_url: str | None = Field(default=None, repr=False)
    data_dir: Path = PROJECT_ROOT / ".local"
    pg_port: int = 54333
    # How long one backend step may keep a caller waiting on the database (backend.db.engine):
    # the whole transaction, pool checkout and connecting included; the parts stay below it.
    db_step_seconds: float = Field(default=2.5, gt=0, le=60)
    db_connect_seconds: float = Field(default=1.5, gt=0, le=60)
    db_pool_wait_seconds: float = Field(default=1.5, gt=0, le=60)
    db_statement_timeout_ms: int = Field(default=2000, ge=100, le=600_000)
    db_lock_timeout_ms: int = Field(default=1000, ge=50, le=600_000)
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_pool_overflow: int = Field(default=20, ge=0, le=500)
    # After a failed connection attempt, steps fail at once for this long (doubling while
    # probes keep failing, up to the maximum; with jitter), and one probe at a time retries.
    db_retry_seconds: float = Field(default=0.5, gt=0, le=60)
    db_retry_max_seconds: float = Field(default=4.0, gt=0, le=300)
    # Production sets one of these (the file: e.g. a container secret). Unset outside
    # production, the install's own random pepper is made once under `data_dir`.
    pin_pepper: SecretStr | None = None
    pin_pepper_file: Path | None = None
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
    # Card/ID numbers matching nothing, per window (backend.services.identity): per card
    # digits and per caller number on each remote channel, per staff member at the console.
    identity_card_limit: int = Field(default=10, ge=1, le=1000)
    identity_caller_limit: int = Field(default=20, ge=1, le=1000)
    identity_staff_limit: int = Field(default=20, ge=1, le=1000)
    identity_window_minutes: int = Field(default=60, ge=1, le=24 * 60)  # attempts.MAX_WINDOW
    # A proof of card, holder and PIN is good for one change this long after it was given.
    proof_valid_seconds: int = Field(default=300, ge=30, le=3600)
    loss_report_valid_working_days: int = Field(default=5, ge=1, le=60)
    # Digits a caller keys for a card number (its letters are left out); the card numbers
    # the backend accepts have 8 or 9.
    card_digits: int = Field(default=8, ge=8, le=9)
    timezone: str = "Asia/Shanghai"
    # Weekday sessions of the agents; public holidays are off, make-up workdays are on.
    office_hours: str = "09:00-12:00,13:30-17:00"
    # Operator files YYYY.toml of public holidays and make-up workdays (backend.workcalendar)
    # for years the chinese_calendar package does not know yet.
    calendar_dir: Path = PROJECT_ROOT / "calendar"
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Each FastAGI server's /metrics, /healthz and /readyz (backend.health). Unset: the
    # FastAGI port + 5000 (4573 -> 9573), so a second server on the machine gets its own;
    # any free port when that is past 65535 or the FastAGI port is 0.
    agi_metrics_host: str = "127.0.0.1"
    agi_metrics_port: int | None = Field(default=None, ge=0, le=65535)

    def metrics_port_for(self, agi_port: int) -> int:
        if self.agi_metrics_port is not None:
            return self.agi_metrics_port
        return agi_port + 5000 if 0 < agi_port <= 60535 else 0

    console_host: str = "127.0.0.1"
    console_port: int = 8333
    # Dev and tests only: pretend it is this moment (office hours, report expiry).
    now_override: dt.datetime | None = None
    log_file: Path | None = None
    log_level: str = "info"

    _local_pepper: SecretStr | None = PrivateAttr(default=None)

    @field_validator("office_hours")
    @classmethod
    def _valid_sessions(cls, value: str) -> str:
        _parse_sessions(value)
        return value

    @model_validator(mode="after")
    def _pepper_outside_dev(self) -> Settings:
        if self.pin_pepper_file is not None:
            if self.pin_pepper is not None:
                raise ValueError("set IVR_PIN_PEPPER or IVR_PIN_PEPPER_FILE, not both")
            self.pin_pepper = SecretStr(
                read_secret_file(self.pin_pepper_file, "IVR_PIN_PEPPER_FILE")
            )
        if self.pin_pepper is not None and not self.pin_pepper.get_secret_value().strip():
            raise ValueError("IVR_PIN_PEPPER is empty")
        if self.pin_pepper is None and self.env == "prod":
            raise ValueError(
                "IVR_PIN_PEPPER or IVR_PIN_PEPPER_FILE is required when IVR_ENV=prod "
                "(the pepper can never change once PINs exist)"
            )
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
    def development_secrets(self) -> bool:
        """Whether this install runs on secrets it made for itself (never in production)."""
        return self.pin_pepper is None

    @property
    def pepper_bytes(self) -> bytes:
        pepper = self.pin_pepper
        if pepper is None:
            if self._local_pepper is None:
                self._local_pepper = SecretStr(local_secret(self.data_dir, "pin_pepper"))
            pepper = self._local_pepper
        return pepper.get_secret_value().encode()

    def check_bind(self, host: str, server: str) -> None:
        """Refuse to serve beyond this machine on development secrets (raises InsecureBind).

        Anyone who can read this checkout's `.local` folder knows them, so they are only
        fit for a service nobody else can reach.
        """
        if self.development_secrets and not is_loopback(host):
            raise InsecureBind(
                f"refusing to serve the {server} on {host or 'every address'}: this install "
                f"uses development secrets (made in {secrets_dir(self.data_dir)}), which are "
                "for loopback addresses only; set IVR_ENV=prod with IVR_PIN_PEPPER or "
                "IVR_PIN_PEPPER_FILE, or bind to 127.0.0.1"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
