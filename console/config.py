"""The console's own settings (prefix `IVR_CONSOLE_`), beside the backend's.

There is no signing secret: sessions, confirmations and device cookies are random tokens
whose hashes live in PostgreSQL, so nothing in the source or the settings can forge one.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.settings import get_settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVR_CONSOLE_",
        env_file=os.environ.get("IVR_ENV_FILE", "ivr12333.env"),
        extra="ignore",
    )

    # A session ends after this long without a request, and after a shift at the latest.
    idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    max_hours: int = Field(default=10, ge=1, le=24)
    # Verified holders wait this long for the agent's or clerk's confirmation.
    pending_minutes: int = Field(default=10, ge=1, le=60)
    # Failed holder checks allowed on one call before the form refuses more.
    call_check_limit: int = Field(default=3, ge=1, le=10)
    # Failed logins in `login_pause_minutes`: per account from browsers it has never logged
    # in from, and per browser that has (its device cookie); then a pause for the rest.
    login_attempts: int = Field(default=5, ge=1, le=50)
    login_pause_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Failed logins from one client address, whatever the usernames, in the same window.
    login_address_attempts: int = Field(default=20, ge=1, le=10000)
    # A browser stays trusted for an account this long after its last login there.
    device_days: int = Field(default=30, ge=1, le=365)
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names
    # the client; without them the peer address is the client, whatever a header says.
    trusted_proxies: str = ""
    # The local Asterisk (asterisk_local) whose agent queue the wallboard shows; empty:
    # none (the queue figures are then shown as not available).
    asterisk_instance: str = "local"
    # Behind TLS (prod) cookies are marked Secure; on plain-HTTP loopback they cannot be.
    secure_cookies: bool | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    "IVR_CONSOLE_TRUSTED_PROXIES: each entry is an address or a network"
                ) from None
        return value

    @model_validator(mode="after")
    def _cookies_secure_in_prod(self) -> ConsoleSettings:
        if self.secure_cookies is None:
            self.secure_cookies = get_settings().env == "prod"
        return self

    @property
    def proxy_networks(self) -> tuple[Network, ...]:
        parts = filter(None, (p.strip() for p in self.trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)


@lru_cache(maxsize=1)
def get_console_settings() -> ConsoleSettings:
    return ConsoleSettings()
