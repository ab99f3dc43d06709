"""PostgreSQL under Patroni 3.0 with etcd 3.4, on loopback: two nodes with
`cluster/patroni.yml`, the application on one URL naming both (read-write), and a steady
stream of callers through a `patronictl switchover`, then through the new primary's node
being killed (Patroni and PostgreSQL, kill -9) until the other node takes over.

Callers in between hear one apology; the same server and engine serve calls again once a
primary takes writes; every PIN change and loss report a caller heard as done is there
afterwards (synchronous replication).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from backend.db.engine import dispose_all, get_engine
from ivr.caller import Timeouts
from ivr.scripts import SCRIPTS
from ivr.server import AgiServer
from tests.conftest import (
    APP_LOG,
    ROOT,
    TEST_DATA,
    IssuedCard,
    make_card_number,
    make_id_number,
    make_pin,
)
from tests.faults.conftest import FIGURES_FILE, OPEN, service_settings, set_clock
from tests.faults.ledger import snapshot
from tests.faults.test_standby import AFTER_S, BEFORE_S, Placed, judge, stream
from tests.sip_phones import free_tcp_port

HERE = TEST_DATA / "patroni"
TEMPLATE = ROOT / "cluster" / "patroni.yml"
ROLE = "ivr12333"
# The service's longest wait between connection attempts, with its jitter (settings).
RETRY_MAX_S = 4.0 * 1.25
DATABASE = "ivr12333"


def _ports(n: int) -> list[int]:
    found: set[int] = set()
    while len(found) < n:
        found.add(free_tcp_port())
    return sorted(found)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (loopback http)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait(check: Any, what: str, within: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {within} s")


@dataclass
class Node:
    name: str
    folder: Path
    pg_port: int
    api_port: int
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    def role(self, path: str) -> bool:
        return _get(f"http://127.0.0.1:{self.api_port}/{path}") == 200

    def start(self) -> None:
        log = (self.folder / "patroni.log").open("ab")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "patroni", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def postmaster(self) -> int | None:
        pid_file = self.folder / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pid_file.read_text().split()[0])
        return None

    def kill(self) -> None:
        """The node dies: Patroni and its PostgreSQL, kill -9."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        postmaster = self.postmaster()
        if postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        postmaster = self.postmaster()
        if postmaster is not None and Path(f"/proc/{postmaster}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGQUIT)


@dataclass
class Cluster:
    nodes: list[Node]
    url: str
    etcd: str
    cards: list[IssuedCard] = field(default_factory=list)

    def take(self) -> IssuedCard:
        assert self.cards, "not enough cards issued for the cluster tests"
        return self.cards.pop()

    def primary(self) -> Node | None:
        return next((n for n in self.nodes if n.role("primary")), None)


def _private(path: Path, owner: pwd.struct_passwd, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    os.chown(path, owner.pw_uid, owner.pw_gid)
    path.chmod(0o600)


@contextlib.contextmanager
def etcd(folder: Path) -> Iterator[str]:
    client, peer = _ports(2)
    data = folder / "etcd"
    log = (folder / "etcd.log").open("ab")
    proc = subprocess.Popen(
        [
            "etcd",
            *("--name", "etcd1", "--data-dir", str(data)),
            *("--listen-client-urls", f"http://127.0.0.1:{client}"),
            *("--advertise-client-urls", f"http://127.0.0.1:{client}"),
            *("--listen-peer-urls", f"http://127.0.0.1:{peer}"),
            *("--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}"),
            *("--initial-cluster", f"etcd1=http://127.0.0.1:{peer}"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait(lambda: _get(f"http://127.0.0.1:{client}/health") == 200, "etcd start", 30)
        yield f"127.0.0.1:{client}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """etcd and two Patroni nodes on free loopback ports, a migrated database with cards,
    and the service's own bounds on the URL naming both nodes."""
    if os.geteuid() != 0 or shutil.which("patroni") is None or shutil.which("etcd") is None:
        pytest.skip("needs root, patroni and etcd-server (apt-get install patroni etcd-server)")
    from backend.localsecrets import private_dir
    from backend.logsetup import configure_logging
    from backend.migrate import upgrade
    from backend.outcomes import Actor, Channel
    from backend.pgcluster import LocalCluster
    from backend.services.cards import issue_card

    shutil.rmtree(HERE, ignore_errors=True)
    HERE.mkdir(parents=True)
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    configure_logging("info", APP_LOG, stream=None)
    owner = pwd.getpwnam("postgres")
    password = secrets.token_urlsafe(24)
    replication = secrets.token_urlsafe(24)
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    nodes: list[Node] = []
    with etcd(HERE) as endpoint:
        for name in ("pg1", "pg2"):
            folder = HERE / name
            # The node's folder: the server's user only, reachable through ours.
            LocalCluster(folder, 0)._prepare_dirs()
            pg_port, api_port = _ports(2)
            config = dict(template)
            config.update(
                name=name,
                etcd3={"hosts": [endpoint]},
                restapi={
                    "listen": f"127.0.0.1:{api_port}",
                    "connect_address": f"127.0.0.1:{api_port}",
                },
            )
            config["postgresql"] = {
                **template["postgresql"],
                "listen": f"127.0.0.1:{pg_port}",
                "connect_address": f"127.0.0.1:{pg_port}",
                "data_dir": str(folder / "data"),
                "pgpass": str(folder / "pgpass"),
                "authentication": {
                    "superuser": {"username": ROLE, "password": password},
                    "replication": {"username": "replicator", "password": replication},
                },
                "parameters": {
                    **template["postgresql"]["parameters"],
                    "unix_socket_directories": str(folder),
                },
            }
            path = folder / "patroni.yml"
            _private(path, owner, yaml.safe_dump(config))
            nodes.append(Node(name, folder, pg_port, api_port, path))
        secrets_folder = private_dir(HERE / "secrets")
        passfile = secrets_folder / "pgpass"
        passfile.write_text(
            "".join(f"127.0.0.1:{n.pg_port}:*:{ROLE}:{password}\n" for n in nodes),
            encoding="utf-8",
        )
        passfile.chmod(0o600)
        hosts = ",".join("127.0.0.1" for _ in nodes)
        ports = ",".join(str(n.pg_port) for n in nodes)
        base = f"postgresql+asyncpg://{ROLE}@/%s?host={hosts}&port={ports}&passfile={passfile}"
        url = base % DATABASE + "&target_session_attrs=read-write"
        try:
            nodes[0].start()
            await asyncio.to_thread(_wait, lambda: nodes[0].role("primary"), "pg1 primary", 90)
            nodes[1].start()
            await asyncio.to_thread(_wait, lambda: nodes[1].role("sync"), "pg2 sync standby", 90)
            admin = create_async_engine(base % "postgres", isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
            await admin.dispose()
            await asyncio.to_thread(upgrade, url)
            made = Cluster(nodes, url, endpoint)
            actor = Actor(Channel.OPERATOR, "cluster")

            async def one() -> IssuedCard:
                card = IssuedCard(make_card_number("P"), make_id_number(), "孙八", make_pin())
                await issue_card(card.card_number, card.id_number, card.name, actor, pin=card.pin)
                return card

            with service_settings(url):
                await dispose_all()
                # A few at a time: the service's bounds hold while cards are issued too.
                for _ in range(60):
                    made.cards += await asyncio.gather(*(one() for _ in range(5)))
                yield made
                await dispose_all()
        finally:
            for node in nodes:
                node.stop()


async def through(cluster: Cluster, fault: str, act: Any) -> dict[str, object]:
    """Callers stream while `act` makes another node the primary; judged as in
    tests/faults/test_standby.py."""
    set_clock(OPEN)
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=3000, entry_ms=3000))
    port = await server.start("127.0.0.1", 0)
    engine = get_engine()
    before = await snapshot()
    placed: list[Placed] = []
    stop = asyncio.Event()
    callers = asyncio.create_task(stream(port, cluster.take, stop, placed))
    await asyncio.sleep(BEFORE_S)
    old = cluster.primary()
    assert old is not None
    gone_at = time.monotonic()
    await asyncio.to_thread(act, cluster, old)
    await asyncio.to_thread(
        _wait, lambda: (p := cluster.primary()) is not None and p is not old, "new primary", 60
    )
    promoted_at = await writable(cluster.url)
    # The connect gate may have backed off to its longest wait (4 s, +25 % jitter) while
    # no node took writes: calls go on past that.
    await asyncio.sleep(AFTER_S + RETRY_MAX_S)
    stop.set()
    await callers
    await server.drain()
    assert not server.errors, list(server.errors)
    assert get_engine() is engine
    figures = await judge(placed, before, gone_at, promoted_at, fault)
    assert figures.recovery_seconds is not None
    assert figures.recovery_seconds < (promoted_at - gone_at) + RETRY_MAX_S + 0.5
    return figures.summary()


async def writable(url: str, within: float = 60) -> float:
    """When a new connection on `url` first got a server taking writes (Patroni names a
    new leader a moment before its PostgreSQL has finished promoting)."""
    probe = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 1})
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(DBAPIError, OSError, TimeoutError):
                async with probe.connect() as conn:
                    if not (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar():
                        return time.monotonic()
            await asyncio.sleep(0.1)
    finally:
        await probe.dispose()
    raise AssertionError(f"no server took writes within {within} s")


def switchover(cluster: Cluster, old: Node) -> None:
    other = next(n for n in cluster.nodes if n is not old)
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "patronictl",
            "-c",
            str(old.config),
            "switchover",
            "--leader",
            old.name,
            "--candidate",
            other.name,
            "--force",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def kill_primary(cluster: Cluster, old: Node) -> None:
    old.kill()


async def test_switchover_then_primary_killed(cluster: Cluster) -> None:
    """patronictl switchover under calls, then the new primary's node killed: each time
    callers in between hear one apology, calls are served again from the new primary
    without a restart, and every change heard as done is kept."""
    first = await through(cluster, "Patroni switchover (patronictl)", switchover)
    # The old primary rejoins as the synchronous standby before the second fault.
    await asyncio.to_thread(
        _wait, lambda: any(n.role("sync") for n in cluster.nodes), "sync standby back", 60
    )
    second = await through(cluster, "Patroni: primary node killed (kill -9)", kill_primary)
    print(json.dumps([first, second], ensure_ascii=False, indent=1))
