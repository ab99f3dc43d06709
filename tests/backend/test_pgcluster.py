"""The local PostgreSQL cluster lets in the application only: other local users are refused,
every connection needs the install's password, and the password is on no command line."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backend import pgcluster
from backend.pgcluster import ROLE, LocalCluster
from tests.conftest import ROOT, TEST_CLUSTER, TEST_DATA

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="connects as other system users (runuser): needs root"
)
IVR12333 = ROOT / ".venv" / "bin" / "ivr12333"


def psql_as(
    user: str, cluster: LocalCluster, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`psql -c 'SELECT current_user'` run as system user `user` against `cluster`."""
    return subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            str(pgcluster._bindir() / "psql"),
            "-h",
            str(cluster.socket_dir),
            "-p",
            str(cluster.port),
            "-U",
            ROLE,
            "-d",
            "postgres",
            "-w",
            "-Atc",
            "SELECT current_user",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "PGPASSFILE": os.devnull, **env},
        check=False,
    )


async def app_query(url: str, sql: str) -> Any:
    """Connect as the application does (the URL alone) and run one query."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(sql))
    finally:
        await engine.dispose()


async def app_user(url: str) -> str:
    return str(await app_query(url, "SELECT current_user"))


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder for clusters of this test's own, under the run's folder; clusters in it
    are stopped and it is removed afterwards."""
    folder = TEST_DATA / f"scratch-{os.urandom(4).hex()}"
    folder.mkdir(parents=True)
    yield folder
    for data in folder.rglob("PG_VERSION"):
        LocalCluster(data.parent.parent, 0).stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_other_local_users_are_refused(database_url: str) -> None:
    """`nobody` cannot reach the socket, root without the password is refused (scram, not
    trust), nobody can read the password, and the application still connects."""
    as_nobody = psql_as("nobody", TEST_CLUSTER)
    assert as_nobody.returncode != 0, as_nobody.stdout
    assert "Permission denied" in as_nobody.stderr
    as_root_without_password = psql_as("root", TEST_CLUSTER)
    assert as_root_without_password.returncode != 0
    assert "password" in as_root_without_password.stderr
    for path in (TEST_CLUSTER.passfile, TEST_DATA / "secrets" / pgcluster.ROLE_PASSWORD_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        reading = subprocess.run(
            ["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True, check=False
        )
        assert reading.returncode != 0 and reading.stdout == b""
    for folder in (TEST_CLUSTER.root, TEST_CLUSTER.socket_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    socket = TEST_CLUSTER.socket_dir / f".s.PGSQL.{TEST_CLUSTER.port}"
    assert stat.S_IMODE(socket.stat().st_mode) == 0o700
    assert asyncio.run(app_user(database_url)) == ROLE


def _record_commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command line the cluster code runs, as `ps` would show it."""
    seen: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        seen.append([str(part) for part in cmd])
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    return seen


def test_a_new_cluster_keeps_its_password_off_command_lines(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating, starting and using a cluster: the password is in no command line, URL or
    server log, and only in the 0600 files of the secrets folder."""
    commands = _record_commands(monkeypatch)
    cluster = LocalCluster(scratch / "pg", 54335)
    cluster.start()
    cluster.ensure_database("scratch")
    url = cluster.url("scratch")
    password = (scratch / "secrets" / pgcluster.ROLE_PASSWORD_FILE).read_text().strip()
    assert len(password) >= 43
    assert commands and all(password not in " ".join(cmd) for cmd in commands)
    assert password not in url
    assert password not in cluster.logfile.read_text()
    hba = (cluster.datadir / "pg_hba.conf").read_text()
    assert [line.split() for line in hba.splitlines() if not line.startswith("#")] == [
        ["local", "all", "all", "scram-sha-256"]
    ]
    assert not list(cluster.root.glob(".initdb-password-*"))
    assert psql_as("nobody", cluster).returncode != 0
    assert asyncio.run(app_user(url)) == ROLE


def _old_style_cluster(data_dir: Path, port: int) -> LocalCluster:
    """A cluster as the project made them before: trust for every local user, a socket
    anyone can open; with one row of data, running."""
    cluster = LocalCluster(data_dir / "pg", port)
    cluster.socket_dir.mkdir(parents=True)
    shutil.chown(cluster.root, "postgres", "postgres")
    shutil.chown(cluster.socket_dir, "postgres", "postgres")
    cluster.socket_dir.chmod(0o777)

    def as_postgres(*args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(pgcluster._bindir() / args[0]), *args[1:]],
            check=True,
            capture_output=True,
        )

    as_postgres("initdb", "-D", str(cluster.datadir), "-U", ROLE, "--auth=trust", "-E", "UTF8")
    as_postgres(
        "pg_ctl",
        "-D",
        str(cluster.datadir),
        "-l",
        str(cluster.logfile),
        "-w",
        "start",
        "-o",
        f"-c listen_addresses='' -c unix_socket_directories='{cluster.socket_dir}' -p {port}",
    )
    made = psql_as(
        "nobody", cluster, "-c", "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)"
    )
    assert made.returncode == 0, made.stderr  # the old hole: any local user is superuser
    return cluster


@pytest.fixture
def open_scratch() -> Iterator[Path]:
    """Like `scratch`, but where every user can reach it (under /tmp): an old-style cluster
    must first be shown open to `nobody`, wherever the project itself lives (a checkout
    in a closed home folder, for one)."""
    folder = Path(tempfile.mkdtemp(prefix="ivr12333-oldpg-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for data in folder.rglob("PG_VERSION"):
        LocalCluster(data.parent.parent, 0).stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_db_start_secures_an_old_trust_cluster(open_scratch: Path) -> None:
    """`ivr12333 db start` on a cluster made with trust: afterwards other users are
    refused, the data is still there and the application connects with its password."""
    scratch = open_scratch
    cluster = _old_style_cluster(scratch, 54336)
    env = {k: v for k, v in os.environ.items() if k != "IVR_DATABASE_URL"}
    env |= {"IVR_DATA_DIR": str(scratch), "IVR_PG_PORT": "54336"}
    started = subprocess.run(
        [str(IVR12333), "db", "start"], env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    refused = psql_as("nobody", cluster)
    assert refused.returncode != 0
    assert psql_as("root", cluster).returncode != 0  # no password, no entry
    status = subprocess.run(
        [str(IVR12333), "db", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    password = (scratch / "secrets" / pgcluster.ROLE_PASSWORD_FILE).read_text().strip()
    assert password not in status.stdout + started.stdout
    assert asyncio.run(app_query(cluster.url("postgres"), "SELECT n FROM kept")) == 7
    assert password not in cluster.logfile.read_text()


def test_a_closed_parent_folder_opens_to_postgres_only(scratch: Path) -> None:
    """A cluster below a folder only its owner may enter (a home folder): the postgres
    user is let through that folder by an ACL entry; others, `nobody` included, are not,
    and its mode bits for others stay closed."""
    closed = scratch / "home"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    cluster = LocalCluster(closed / "pg", 54337)
    cluster.start()
    assert stat.S_IMODE(closed.stat().st_mode) & 0o007 == 0
    for user, allowed in (("postgres", True), ("nobody", False)):
        probe = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-x", str(closed)], check=False
        )
        assert (probe.returncode == 0) is allowed, user
    listing = subprocess.run(
        ["runuser", "-u", "postgres", "--", "ls", str(closed)], capture_output=True, check=False
    )
    assert listing.returncode != 0  # search only: it cannot list the folder
    assert asyncio.run(app_user(cluster.url("postgres"))) == ROLE
