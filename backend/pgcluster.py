"""The project's own PostgreSQL cluster, used when IVR_DATABASE_URL is unset.

Made with the machine's PostgreSQL binaries in a git-ignored folder, listening only on a
Unix socket inside that folder (no TCP port at all). PostgreSQL refuses to run as root, so
when started by root the cluster belongs to the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROLE = "ivr12333"
DEFAULT_DB = "ivr12333"


class ClusterError(RuntimeError):
    pass


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return Path(candidates[-1])
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ClusterError("PostgreSQL is not installed (apt-get install postgresql)")


@dataclass(frozen=True)
class LocalCluster:
    root: Path
    port: int
    extra_options: tuple[str, ...] = ()

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def logfile(self) -> Path:
        return self.root / "postgresql.log"

    def url(self, database: str = DEFAULT_DB) -> str:
        return f"postgresql+asyncpg://{ROLE}@/{database}?host={self.socket_dir}&port={self.port}"

    def _owner(self) -> str | None:
        """The system user the server runs as, when we are root."""
        return "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(_bindir() / args[0]), *args[1:]]
        owner = self._owner()
        if owner:
            cmd = ["runuser", "-u", owner, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise ClusterError(
                f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        owner = self._owner()
        if owner:
            try:
                entry = pwd.getpwnam(owner)
            except KeyError as exc:
                raise ClusterError(f"system user {owner!r} is missing") from exc
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            # The server user must be able to reach its folder through ours.
            for parent in self.root.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self._prepare_dirs()
        if self.initialised():
            return
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            ROLE,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        )

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._run("pg_ctl", "-D", str(self.datadir), "status", check=False).returncode == 0

    def start(self) -> None:
        self.init()
        if self.running():
            return
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.socket_dir}'",
                f"-p {self.port}",
                "-c fsync=off" if os.environ.get("IVR_ENV") == "test" else "",
                *self.extra_options,
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = self._run(
                "pg_isready", "-h", str(self.socket_dir), "-p", str(self.port), check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise ClusterError("PostgreSQL did not become ready within 30 s")

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def psql(self, sql: str, database: str = DEFAULT_DB) -> str:
        result = self._run(
            "psql",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            ROLE,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        )
        return result.stdout

    def ensure_database(self, database: str = DEFAULT_DB) -> None:
        _check_name(database)
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"  # noqa: S608 (checked name)
        exists = self.psql(query, "postgres")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{database}"', "postgres")

    def drop_database(self, database: str) -> None:
        _check_name(database)
        self.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', "postgres")


def _check_name(database: str) -> None:
    # Database names go into SQL text, so only plain identifiers are accepted.
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", database):
        raise ClusterError(f"unsafe database name {database!r}")


def default_cluster() -> LocalCluster:
    from backend.settings import get_settings

    s = get_settings()
    return LocalCluster(s.data_dir / "pg", s.pg_port)


def database_url() -> str:
    """IVR_DATABASE_URL when set, else the local cluster's database."""
    from backend.settings import get_settings

    s = get_settings()
    return s.database_url or default_cluster().url()
