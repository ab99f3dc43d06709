"""No secret in the source opens the console: a session cookie signed with any string
constant of the project is refused under `make run`'s settings (IVR_ENV=dev)."""

from __future__ import annotations

import ast
import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from backend.settings import get_settings, reset_settings
from console.config import get_console_settings
from tests.conftest import ROOT
from tests.console.conftest import Account, MakeStaff, staff_id_of


def source_strings() -> set[str]:
    """Every str constant (docstrings included) in the project's Python files."""
    found: set[str] = set()
    paths = []
    for folder, subfolders, files in os.walk(ROOT):
        # Not descended into: the virtualenv, local data (clusters, root folders), builds.
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d != "build"]
        paths += [Path(folder) / name for name in files if name.endswith(".py")]
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    return found


@pytest.fixture
def dev_settings(monkeypatch: pytest.MonkeyPatch, db: str) -> Iterator[None]:
    """The settings `make run` gives the console: IVR_ENV=dev, no console variables."""
    monkeypatch.setenv("IVR_ENV", "dev")
    for name in ("IVR_CONSOLE_SECRET", "IVR_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    get_console_settings.cache_clear()
    yield
    monkeypatch.undo()
    reset_settings()
    get_console_settings.cache_clear()


async def test_cookie_signed_with_any_source_string_is_refused(
    dev_settings: None, make_staff: MakeStaff
) -> None:
    """Thousands of forged supervisor sessions, one per source string: each gets the login
    page, none a supervisor page."""
    from console.app import create_app

    assert get_settings().env == "dev"
    boss: Account = await make_staff("supervisor")
    boss_id = await staff_id_of(boss.username)
    candidates = sorted(source_strings())
    assert len(candidates) > 1000
    transport = httpx.ASGITransport(app=create_app())
    opened: list[str] = []
    gate = asyncio.Semaphore(16)

    async def forge(secret: str) -> None:
        signer = URLSafeTimedSerializer(secret.encode(), salt="console-session")
        cookie = signer.dumps(["nonce", boss_id, time.time()])
        async with (
            gate,
            httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", cookies={"ivr_console": cookie}
            ) as http,
        ):
            response = await http.get("/supervisor/audit")
        if response.status_code != 303 or response.headers["location"] != "/login":
            opened.append(secret)

    await asyncio.gather(*(forge(s) for s in candidates))
    # Only how many: the strings that worked are secrets, not for a test report.
    assert len(opened) == 0, f"{len(opened)} source strings sign a working session cookie"
