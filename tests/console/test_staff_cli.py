"""`ivr12333 staff create-supervisor`: the first account, password never an argument."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from backend.services.staff import Role, authenticate
from tests.conftest import ROOT
from tests.console.conftest import new_password


def _staff(
    args: list[str], database_url: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "staff", *args],
        cwd=ROOT,
        env={**os.environ, "IVR_DATABASE_URL": database_url, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_create_supervisor_from_stdin_and_env(db: str) -> None:
    """Both ways make a supervisor who can log in; a taken name fails with exit code 1."""
    first, second = f"boss{secrets.token_hex(3)}", f"boss{secrets.token_hex(3)}"
    password = new_password()
    made = _staff(
        ["create-supervisor", "--username", first, "--name", "主管甲", "--password-stdin"],
        db,
        stdin=password + "\n",
    )
    assert made.returncode == 0, made.stderr
    other_password = new_password()
    by_env = _staff(
        ["create-supervisor", "--username", second, "--name", "主管乙"],
        db,
        IVR_STAFF_PASSWORD=other_password,
    )
    assert by_env.returncode == 0, by_env.stderr
    for name, secret in ((first, password), (second, other_password)):
        found = await authenticate(name, secret)
        assert found is not None and found.role == Role.SUPERVISOR
    taken = _staff(
        ["create-supervisor", "--username", first, "--name", "x", "--password-stdin"],
        db,
        stdin=password + "\n",
    )
    assert taken.returncode == 1 and "exists already" in taken.stderr


async def test_set_password_from_stdin_ends_sessions(db: str) -> None:
    """`staff set-password` replaces the password and ends the account's open sessions;
    an unknown account or a short password fails with exit code 1 and changes nothing."""
    from httpx import ASGITransport, AsyncClient

    from backend.outcomes import Actor, Channel
    from backend.services.staff import create_staff
    from console.app import create_app
    from tests.console.conftest import Account, Client, client_address

    name, first, second = f"agent{secrets.token_hex(3)}", new_password(), new_password()
    await create_staff(name, "李明", Role.AGENT, first, Actor(Channel.OPERATOR, "test"))
    transport = ASGITransport(app=create_app(), client=(client_address(), 50000))
    async with AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        browser = Client(http)
        await browser.login(Account(name, first, "agent"))
        done = _staff(["set-password", name, "--password-stdin"], db, stdin=second + "\n")
        assert done.returncode == 0, done.stderr
        assert "sessions have ended" in done.stdout
        assert (await browser.get("/agent")).status_code == 303
    assert await authenticate(name, first) is None
    assert await authenticate(name, second) is not None
    unknown = _staff(["set-password", "nobody" + name, "--password-stdin"], db, stdin=second)
    assert unknown.returncode == 1 and "no account" in unknown.stderr
    short = _staff(["set-password", name, "--password-stdin"], db, stdin="short\n")
    assert short.returncode == 1 and "10-128" in short.stderr
    assert await authenticate(name, second) is not None
