"""The staff console, served as in production, while its database is stopped and after it
is back: a polite page, never a traceback, and the same session working again."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx

from backend.outcomes import Actor, Channel
from backend.services.staff import create_staff
from console.messages import UNAVAILABLE
from tests.conftest import TEST_DATA, USED_SECRETS
from tests.console.conftest import csrf_of, serve_console
from tests.faults.callers import FaultFigures
from tests.faults.conftest import Postgres, record


async def login(http: httpx.AsyncClient, username: str, password: str) -> None:
    token = csrf_of((await http.get("/login")).text)
    form = {"username": username, "password": password, "csrf_token": token}
    response = await http.post("/login", data=form)
    assert response.status_code == 303, response.text


async def test_console_during_and_after_an_outage(postgres: Postgres) -> None:
    """PostgreSQL stops under a logged-in agent and a stranger at the login page: every
    page that needs the database answers 503 with the outage message (and Retry-After),
    an unknown page still 404, nothing answers 500 or shows a traceback; once PostgreSQL
    is back the agent's same session works again in the same console process."""
    username = f"agent{secrets.token_hex(3)}"
    password = "pw-" + secrets.token_urlsafe(12)
    USED_SECRETS.add(password)
    await create_staff(username, "李明", "agent", password, Actor(Channel.OPERATOR, "faults"))
    figures = FaultFigures("database stopped under the console")
    with serve_console(postgres.url, "faults-console") as served:
        async with (
            httpx.AsyncClient(base_url=served.url) as agent,
            httpx.AsyncClient(base_url=served.url) as stranger,
        ):
            await login(agent, username, password)
            assert (await agent.get("/agent")).status_code == 200
            stranger_csrf = csrf_of((await stranger.get("/login")).text)

            await asyncio.to_thread(postgres.stop)
            pages = {
                "agent /": await agent.get("/", follow_redirects=True),
                "agent /agent": await agent.get("/agent"),
                "agent /nowhere": await agent.get("/nowhere"),
                "agent POST /logout": await agent.post("/logout", data={"csrf_token": "x"}),
                "stranger POST /login": await stranger.post(
                    "/login",
                    data={"username": username, "password": "wrong", "csrf_token": stranger_csrf},
                ),
            }
            figures.notes["pages"] = {name: r.status_code for name, r in pages.items()}
            await asyncio.to_thread(postgres.start)
            started = time.monotonic()
            while (back := await agent.get("/agent")).status_code != 200:
                assert time.monotonic() - started < 10, back.status_code
                await asyncio.sleep(0.2)
            figures.recovery_seconds = time.monotonic() - started
    record(figures)

    for name, response in pages.items():
        assert response.status_code in (503, 404), name
        assert "Traceback" not in response.text and "sqlalchemy" not in response.text, name
        assert response.headers["content-type"].startswith("text/html"), name
        if response.status_code == 503:
            assert UNAVAILABLE in response.text, name
            assert response.headers["retry-after"], name
    assert pages["agent /nowhere"].status_code == 404
    assert "李明" in back.text  # the same session, the same agent
    errors = (TEST_DATA / "faults-console.log").read_text(encoding="utf-8")
    assert "Traceback" not in errors
