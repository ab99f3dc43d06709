"""The console's own settings (prefix `IVR_CONSOLE_`), beside the backend's."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.settings import get_settings

# Used only outside production; `IVR_ENV=prod` refuses to start without a real secret.
DEV_SECRET = "dev-only-console-secret-not-for-production"  # noqa: S105


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVR_CONSOLE_",
        env_file=os.environ.get("IVR_ENV_FILE", "ivr12333.env"),
        extra="ignore",
    )

    secret: SecretStr | None = None
    # A session ends after this long without a request, and after a shift at the latest.
    idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    max_hours: int = Field(default=10, ge=1, le=24)
    # Verified holders wait this long for the agent's or clerk's confirmation.
    pending_minutes: int = Field(default=10, ge=1, le=60)
    # Failed holder checks allowed on one call before the form refuses more.
    call_check_limit: int = Field(default=3, ge=1, le=10)
    # Failed logins per username before a pause of `login_pause_minutes`.
    login_attempts: int = Field(default=5, ge=1, le=50)
    login_pause_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Behind TLS (prod) cookies are marked Secure; on plain-HTTP loopback they cannot be.
    secure_cookies: bool | None = None

    @model_validator(mode="after")
    def _secret_outside_dev(self) -> ConsoleSettings:
        env = get_settings().env
        if self.secret is None:
            if env == "prod":
                raise ValueError("IVR_CONSOLE_SECRET is required when IVR_ENV=prod")
            self.secret = SecretStr(DEV_SECRET)
        if self.secure_cookies is None:
            self.secure_cookies = env == "prod"
        return self

    @property
    def secret_bytes(self) -> bytes:
        assert self.secret is not None
        return self.secret.get_secret_value().encode()


@lru_cache(maxsize=1)
def get_console_settings() -> ConsoleSettings:
    return ConsoleSettings()
