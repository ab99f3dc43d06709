"""The project's own PostgreSQL cluster, used when IVR_DATABASE_URL is unset.

Made with the machine's PostgreSQL binaries in a git-ignored folder, listening only on a
Unix socket inside that folder (no TCP port at all). PostgreSQL refuses to run as root, so
when started by root the cluster belongs to the `postgres` system user.

Nobody else on the machine gets in: the cluster's folder and socket folder are 0700 (root,
and the server's own user, still reach them), the socket itself is 0700, and every local
connection must give the role's password (scram-sha-256). The password is random, made
once per install in the local secrets folder (`backend.localsecrets`), and reaches clients
through a libpq password file named in the URL (`passfile=`): it is never on a command line
or in a URL. A cluster made by an older version with `trust` is secured in place by `start`.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import stat
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from backend.localsecrets import local_secret, private_dir, secrets_dir

ROLE = "ivr12333"
DEFAULT_DB = "ivr12333"
# File names in the secrets folder: the role's password, and the same in libpq's
# password-file format for clients.
ROLE_PASSWORD_FILE = "pg_role"  # noqa: S105 (a file name, not a password)
PASSFILE_NAME = "pgpass"
# Socket folder and socket: the server's user only (root passes any permission check).
_PRIVATE = 0o700
_HBA = (
    "# ivr12333: local socket connections only (no TCP listener), each with the role's\n"
    "# password; the socket itself is reachable by the server's user and root only.\n"
    "local   all   all   scram-sha-256\n"
)
# A cluster that feeds a streaming standby also lets the role replicate, the same way.
_HBA_REPLICATION = _HBA + "local   replication   all   scram-sha-256\n"


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


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, 7677), so a
    password can be set without sending it: the server never sees it in SQL text."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# POSIX access ACL as the kernel stores it in `system.posix_acl_access`.
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_ACL_XATTR = "system.posix_acl_access"


def _grant_search(folder: Path, uid: int) -> None:
    """Let user `uid` pass through `folder` (search only: no listing, no reading) with one
    ACL entry, leaving everyone else's access as it was."""
    try:
        os.getxattr(folder, _ACL_XATTR)
    except OSError:
        pass  # no ACL yet: the usual case
    else:
        raise ClusterError(
            f"{folder} has an access ACL already; give the postgres user search "
            f"permission on it (setfacl -m u:postgres:x {folder}) or set IVR_DATA_DIR "
            "to a folder it can reach"
        )
    mode = folder.stat().st_mode
    owner, group, other = (mode >> 6) & 7, (mode >> 3) & 7, mode & 7

    def entry(tag: int, perm: int, ident: int = _ACL_UNDEFINED_ID) -> bytes:
        return struct.pack("<HHI", tag, perm, ident)

    acl = (
        struct.pack("<I", _ACL_VERSION)
        + entry(_ACL_USER_OBJ, owner)
        + entry(_ACL_USER, 1, uid)
        + entry(_ACL_GROUP_OBJ, group)
        # The mask bounds named entries and the owning group: the group keeps its bits.
        + entry(_ACL_MASK, group | 1)
        + entry(_ACL_OTHER, other)
    )
    try:
        os.setxattr(folder, _ACL_XATTR, acl)
    except OSError as exc:
        raise ClusterError(
            f"the postgres user cannot reach {folder} and this file system takes no ACL "
            f"({exc.strerror}); set IVR_DATA_DIR to a folder it can reach"
        ) from None


def _can_search(folder: Path, user: pwd.struct_passwd) -> bool:
    info = folder.stat()
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & 0o100)
    groups = {user.pw_gid, *os.getgrouplist(user.pw_name, user.pw_gid)}
    if info.st_gid in groups:
        return bool(info.st_mode & 0o010)
    if info.st_mode & 0o001:
        return True
    try:  # an ACL entry for this user (e.g. from _grant_search) also lets it through
        return (
            subprocess.run(
                ["runuser", "-u", user.pw_name, "--", "test", "-x", str(folder)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
    except OSError:
        return False


@dataclass(frozen=True)
class LocalCluster:
    root: Path
    port: int
    extra_options: tuple[str, ...] = ()
    # The password lives in `<secrets_home>/secrets/`; by default the folder holding
    # `root` (the install's data folder, for the default cluster).
    secrets_home: Path | None = None
    # Whether a standby may stream from this cluster (`make_standby`).
    replication: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def logfile(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def _home(self) -> Path:
        return self.secrets_home if self.secrets_home is not None else self.root.parent

    @property
    def passfile(self) -> Path:
        return secrets_dir(self._home) / PASSFILE_NAME

    def _password(self) -> str:
        return local_secret(self._home, ROLE_PASSWORD_FILE)

    def ensure_passfile(self) -> Path:
        """Write (or refresh) the libpq password file for the role, 0600, atomically."""
        line = f"*:*:*:{ROLE}:{self._password()}\n"
        path = self.passfile
        private_dir(path.parent)
        try:
            if path.read_text(encoding="ascii") == line:
                return path
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        partial = path.with_name(f".{PASSFILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(line)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def url(self, database: str = DEFAULT_DB) -> str:
        """The asyncpg URL of `database`: socket, port and password file, no password."""
        passfile = self.ensure_passfile()
        return (
            f"postgresql+asyncpg://{ROLE}@/{database}?host={quote(str(self.socket_dir))}"
            f"&port={self.port}&passfile={quote(str(passfile))}"
        )

    def _owner(self) -> pwd.struct_passwd | None:
        """The system user the server runs as, when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ClusterError("system user 'postgres' is missing") from exc

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A server-side tool (initdb, pg_ctl), as the server's user."""
        cmd = [str(_bindir() / args[0]), *args[1:]]
        owner = self._owner()
        if owner:
            cmd = ["runuser", "-u", owner.pw_name, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return _checked(args[0], result, check)

    def _client(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """A client tool (psql, pg_isready) as ourselves; the password from the file."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(self.ensure_passfile())
        result = subprocess.run(
            [str(_bindir() / args[0]), *args[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        return _checked(args[0], result, check)

    def _psql(
        self, database: str, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """psql as the role, on the cluster's socket, into `database`."""
        where = ("-h", str(self.socket_dir), "-p", str(self.port), "-U", ROLE, "-d", database)
        return self._client("psql", *where, *args, stdin=stdin, check=check)

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        owner = self._owner()
        for path in (self.root, self.socket_dir):
            if owner:
                os.chown(path, owner.pw_uid, owner.pw_gid)
            os.chmod(path, _PRIVATE)
        if owner:
            # The server's user must pass through our folders to reach its own.
            for parent in reversed(self.root.parents):
                if not _can_search(parent, owner):
                    _grant_search(parent, owner.pw_uid)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self._prepare_dirs()
        if self.initialised():
            return
        # initdb reads the password from a file only its user can read, inside the
        # cluster's private folder, removed at once.
        pwfile = self.root / f".initdb-password-{secrets.token_hex(4)}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(self._password() + "\n")
            owner = self._owner()
            if owner:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.datadir),
                "-U",
                ROLE,
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()

    def _hba(self) -> Path:
        return self.datadir / "pg_hba.conf"

    def _write_hba(self) -> None:
        # Rewritten in place: the file keeps initdb's owner and mode.
        self._hba().write_text(self._hba_text, encoding="utf-8")

    @property
    def _hba_text(self) -> str:
        return _HBA_REPLICATION if self.replication else _HBA

    def _secured(self) -> bool:
        """Whether pg_hba.conf is ours (older clusters let local users in by `trust`)."""
        return self._hba().read_text(encoding="utf-8") == self._hba_text

    def _socket_open(self) -> bool:
        """Whether the socket folder or socket lets anyone but the server's user in."""
        paths = [self.socket_dir, self.socket_dir / f".s.PGSQL.{self.port}"]
        return any(p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077 for p in paths)

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._run("pg_ctl", "-D", str(self.datadir), "status", check=False).returncode == 0

    def start(self) -> None:
        """Create (once) and start the cluster; secure one made or started by an older
        version (trust, a world-open socket) on the way."""
        self.init()
        if self.running():
            if self._secured() and not self._socket_open():
                return
            self.stop()  # started with a socket anyone could use: restart it closed
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.socket_dir}'",
                f"-c unix_socket_permissions={_PRIVATE:04o}",
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
        if not self._secured():
            self._secure_in_place()
        self._check_password()

    def _secure_in_place(self) -> None:
        """Give the role its password (as a SCRAM verifier, on standard input) over the
        old rules (trust), which only the server's user and root can use now that the
        socket is closed, then require passwords and nothing else."""
        sql = f"ALTER ROLE {ROLE} PASSWORD '{scram_verifier(self._password())}';\n"
        self._psql(
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-f",
            "-",
            stdin=sql,
        )
        self._write_hba()
        self._run("pg_ctl", "-D", str(self.datadir), "reload")

    def _check_password(self) -> None:
        probe = self._psql(
            "postgres",
            "-w",
            "-Atc",
            "SELECT 1",
            check=False,
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"the local cluster refuses the password in {secrets_dir(self._home)} "
                f"(was that folder replaced?). Stop it and remove {self.root} to make a new "
                f"one (its data is lost): {_first_line(probe)}"
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = self._client(
                "pg_isready", "-h", str(self.socket_dir), "-p", str(self.port), check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise ClusterError("PostgreSQL did not become ready within 30 s")

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def make_standby(
        self, root: Path, port: int, extra_options: tuple[str, ...] = ()
    ) -> LocalCluster:
        """A streaming standby of this running cluster (which needs `replication`), made
        with pg_basebackup at `root` and not started. The standby reaches this cluster's
        socket with the role's password from a password file inside its own private folder
        (never in its configuration), so it can be promoted and fed from in turn."""
        if not self.replication:
            raise ClusterError("this cluster was not made to feed a standby (replication)")
        standby = LocalCluster(root, port, extra_options, self._home, replication=True)
        if standby.initialised():
            raise ClusterError(f"{standby.datadir} exists already")
        standby._prepare_dirs()
        self._client(
            "pg_basebackup",
            *("-h", str(self.socket_dir), "-p", str(self.port), "-U", ROLE),
            *("-D", str(standby.datadir), "-X", "stream", "-c", "fast", "-w"),
        )
        passfile = standby.root / "replication.pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(self.ensure_passfile().read_text(encoding="ascii"))
        application = re.sub(r"[^a-z0-9_]", "_", root.name.lower()) or "standby"
        conninfo = (
            f"host={self.socket_dir} port={self.port} user={ROLE} "
            f"passfile={passfile} application_name={application}"
        )
        with (standby.datadir / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"primary_conninfo = '{conninfo}'\n")
        (standby.datadir / "standby.signal").touch()
        owner = standby._owner()
        if owner:
            for path in (passfile, standby.datadir, *standby.datadir.rglob("*")):
                os.lchown(path, owner.pw_uid, owner.pw_gid)
        return standby

    def in_recovery(self) -> bool:
        """Whether the cluster runs as a standby."""
        return self.psql("SELECT pg_is_in_recovery()", "postgres").strip() == "t"

    def promote(self) -> None:
        """Make a standby the primary; returns once it takes writes."""
        self._run("pg_ctl", "-D", str(self.datadir), "-w", "-t", "60", "promote")

    def psql(self, sql: str, database: str = DEFAULT_DB) -> str:
        result = self._psql(
            database,
            "-w",
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


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    text = result.stderr.strip() or result.stdout.strip()
    return text.splitlines()[0] if text else f"exit code {result.returncode}"


def _checked(
    tool: str, result: subprocess.CompletedProcess[str], check: bool
) -> subprocess.CompletedProcess[str]:
    if check and result.returncode != 0:
        raise ClusterError(f"{tool} failed: {_first_line(result)}")
    return result


def _check_name(database: str) -> None:
    # Database names go into SQL text, so only plain identifiers are accepted.
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", database):
        raise ClusterError(f"unsafe database name {database!r}")


def writable_url(clusters: list[LocalCluster], database: str = DEFAULT_DB) -> str:
    """One asyncpg URL naming every cluster, which connects to whichever takes writes
    (`target_session_attrs=read-write`): a primary and its standbys, in any order."""
    if not clusters:
        raise ClusterError("no cluster to connect to")
    _check_name(database)
    passfile = clusters[0].ensure_passfile()
    hosts = ",".join(quote(str(c.socket_dir)) for c in clusters)
    ports = ",".join(str(c.port) for c in clusters)
    return (
        f"postgresql+asyncpg://{ROLE}@/{database}?host={hosts}&port={ports}"
        f"&passfile={quote(str(passfile))}&target_session_attrs=read-write"
    )


def default_cluster() -> LocalCluster:
    from backend.settings import get_settings

    s = get_settings()
    return LocalCluster(s.data_dir / "pg", s.pg_port)


def database_url() -> str:
    """IVR_DATABASE_URL when set, else the local cluster's database."""
    from backend.settings import get_settings

    s = get_settings()
    return s.database_url or default_cluster().url()
