"""Console fixtures: staff accounts, an in-process client, and the served console for the
browser; every page any of them sees is kept for the secret scan."""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Response as PwResponse

from tests.conftest import ROOT, TEST_DATA, USED_SECRETS

# Cheap password hashes for the tests (the served console inherits this too).
os.environ.setdefault("IVR_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("IVR_PASSWORD_HASH_MEMORY_KIB", "8192")

# The HTML of every page the tests saw, through httpx or the browser.
SEEN_PAGES: list[str] = []

STAFF_NAMES = {"agent": "李明", "clerk": "王芳", "supervisor": "张伟"}

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: str


MakeStaff = Callable[[str], Awaitable[Account]]


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def new_password() -> str:
    password = "pw-" + secrets.token_urlsafe(12)
    USED_SECRETS.add(password)
    return password


async def staff_id_of(username: str) -> int:
    from sqlalchemy import select

    from backend.db.tables import staff
    from backend.services import common

    async with common.transaction() as conn:
        found = await conn.execute(select(staff.c.id).where(staff.c.username == username))
        staff_id: int = found.scalar_one()
    return staff_id


@pytest.fixture
async def make_staff(db: str):  # type: ignore[no-untyped-def]
    """Create an account: `await make_staff("agent")`."""
    from backend.outcomes import Actor, Channel
    from backend.services.staff import create_staff

    async def _make(role: str) -> Account:
        username = f"{role}{secrets.token_hex(3)}"
        password = new_password()
        shown = STAFF_NAMES.get(role, role)
        await create_staff(username, shown, role, password, Actor(Channel.OPERATOR, "test"))
        return Account(username, password, role)

    return _make


class Client:
    """An in-process client that records each page and knows the current CSRF token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    def _keep(self, response: httpx.Response) -> httpx.Response:
        if response.headers.get("content-type", "").startswith("text/html"):
            SEEN_PAGES.append(response.text)
            if "csrf_token" in response.text:
                self.csrf = csrf_of(response.text)
        return response

    async def get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self._keep(await self.http.get(url, params=params))

    async def post(self, url: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        form = {**data, "csrf_token": self.csrf} if csrf else data
        return self._keep(await self.http.post(url, data=form))

    async def login(self, account: Account) -> httpx.Response:
        await self.get("/login")
        response = await self.post(
            "/login", {"username": account.username, "password": account.password}
        )
        assert response.status_code == 303, response.text
        # As a browser would: the start page, and with it the new session's CSRF token.
        await self.get(response.headers["location"])
        return response


def client_address() -> str:
    """A client address of its own for each test browser, as colleagues at their own PCs:
    the per-address login limit then counts one test's wrong passwords, not the run's."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
async def client(db: str) -> AsyncIterator[Client]:
    """The console app in this process, on the tests' event loop."""
    from console.app import create_app

    transport = httpx.ASGITransport(app=create_app(), client=(client_address(), 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield Client(http)


@pytest.fixture
async def open_client(db: str):  # type: ignore[no-untyped-def]
    """More browsers on one console app: `await open_client(address=..., app=...)`.

    Each has its own cookies and comes from the given client address (else one of its
    own); without `app` they share one app made for the test, as the requests of one
    running console would.
    """
    from console.app import create_app

    shared = create_app()
    async with contextlib.AsyncExitStack() as stack:

        async def _open(address: str | None = None, app: object = None) -> Client:
            peer = (address or client_address(), 50000)
            transport = httpx.ASGITransport(app=app or shared, client=peer)  # type: ignore[arg-type]
            http = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
            return Client(await stack.enter_async_context(http))

        yield _open


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    """A running `ivr12333 console serve` process."""

    process: subprocess.Popen[bytes]
    url: str


@contextlib.contextmanager
def serve_console(database_url: str, name: str, **env: str) -> Iterator[Served]:
    """`ivr12333 console serve` in a subprocess on a free loopback port, on the test DB;
    `env` adds or (with "") removes variables. Its output (the log on stdout, anything on
    stderr) goes to `<name>.log`."""
    port = _free_port()
    merged = {**os.environ, "IVR_DATABASE_URL": database_url, **env}
    merged = {key: value for key, value in merged.items() if value != ""}
    output = (TEST_DATA / f"{name}.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "console", "serve", "--port", str(port)],
        cwd=ROOT,
        env=merged,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                httpx.get(url + "/login", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the console did not start; see {name}.log") from None
                time.sleep(0.1)
        yield Served(server, url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        output.close()


@pytest.fixture(scope="session")
def console_url(database_url: str) -> Iterator[str]:
    """The served console the browser tests use."""
    with serve_console(database_url, "console-server") as served:
        yield served.url


BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=BROWSER_ARGS
        )
        yield launched
        await launched.close()


async def _keep_html(response: PwResponse) -> None:
    if response.status >= 300 and response.status < 400:
        return
    if not response.headers.get("content-type", "").startswith("text/html"):
        return
    # A body the browser already dropped is skipped; the page's DOM is kept at the end.
    with contextlib.suppress(PlaywrightError):
        SEEN_PAGES.append(await response.text())


@pytest.fixture
async def page(browser: Browser, console_url: str) -> AsyncIterator[Page]:
    """A fresh browser context on the served console; every HTML response is kept."""
    context = await browser.new_context(
        base_url=console_url, viewport={"width": 1100, "height": 720}, locale="zh-CN"
    )
    opened = await context.new_page()
    opened.on("response", _keep_html)
    yield opened
    SEEN_PAGES.append(await opened.content())
    await context.close()
