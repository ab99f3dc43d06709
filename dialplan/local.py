"""A local Asterisk 22, run from the Debian sid root folder, for `make run` and the tests.

`up()` installs the project's configuration and prompts into the root, starts Asterisk in
the background and waits until it has fully booted; `down()` stops it. Nothing is mounted
into the root: Asterisk needs neither /proc nor more of /dev than debootstrap creates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from backend.settings import Settings, get_settings
from dialplan import moh, render
from dialplan.render import DEFAULT_AGENTS, Agent, Setup
from dialplan.root import chown_asterisk_dirs, ensure_root, root_path
from prompts.build import build as build_prompts

log = structlog.get_logger(__name__)

BOOT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 20.0
MOH_DIR = "usr/share/asterisk/moh-ivr12333"
SOUNDS_DIR = "usr/share/asterisk/sounds/zh"

# Asterisk's start-up log: an error, or a warning from the code that reads the configuration,
# means a broken configuration. (A clean start logs no warning at all; warnings from other
# code, which a newer Asterisk in Debian sid may add, are reported but do not stop it.)
_LOGGED = re.compile(r"\b(WARNING|ERROR)\[[^\]]*\](?:\[[^\]]*\])?: ([\w/]+)\.c:")
_CONFIG_CODE = re.compile(
    r"(^|/)(config\w*|pbx_config|app_queue|res_pjsip\w*|chan_pjsip|res_sorcery\w*"
    r"|res_musiconhold|loader|indications|features_config|res_agi|logger)$"
)
_ALWAYS = re.compile(r"parse error|Unable to load config|No such file")
# Known and harmless with this root folder.
_HARMLESS = (
    # Printed at start-up by Asterisk 22 itself, whatever stasis.conf says.
    "Could not find option 'minimum_size' with type 'threadpool'",
    "Unable to load config file 'stasis.conf'",
)

# Asterisk processes this process started, so we can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class AsteriskError(RuntimeError):
    """Asterisk did not start, stop or load its configuration."""


@dataclass(frozen=True)
class Instance:
    """A running (or recorded) local Asterisk."""

    root: Path
    name: str
    pid: int
    sip_port: int
    agi_servers: tuple[str, ...]
    log_path: Path
    started: float

    @property
    def conf_path(self) -> str:
        return f"/etc/asterisk-{self.name}/asterisk.conf"

    def cli(self, command: str, timeout: float = CLI_TIMEOUT_S) -> str:
        """Runs one Asterisk CLI command and returns its output."""
        return _cli(self.root, self.name, command, timeout)

    def log_text(self, since: int = 0) -> str:
        """Asterisk's console output (verbose level 3) from byte offset `since`."""
        with self.log_path.open("rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def is_running(self) -> bool:
        return _is_our_asterisk(self.pid, self.name)

    def to_json(self) -> str:
        return json.dumps(
            {
                "root": str(self.root),
                "name": self.name,
                "pid": self.pid,
                "sip_port": self.sip_port,
                "agi_servers": list(self.agi_servers),
                "log_path": str(self.log_path),
                "started": self.started,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Instance:
        d = json.loads(text)
        return cls(
            root=Path(d["root"]),
            name=str(d["name"]),
            pid=int(d["pid"]),
            sip_port=int(d["sip_port"]),
            agi_servers=tuple(d["agi_servers"]),
            log_path=Path(d["log_path"]),
            started=float(d["started"]),
        )


def _state_file(data_dir: Path, name: str) -> Path:
    return data_dir / f"asterisk-{name}.json"


def _cli(root: Path, name: str, command: str, timeout: float) -> str:
    result = subprocess.run(
        [
            "chroot",
            str(root),
            "/usr/sbin/asterisk",
            "-C",
            f"/etc/asterisk-{name}/asterisk.conf",
            "-rx",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AsteriskError(
            f"asterisk -rx {command!r} failed: {(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


def _is_our_asterisk(pid: int, name: str) -> bool:
    """Whether `pid` is an Asterisk of this instance (pids get reused)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # The daemon runs with -f; `asterisk -rx` consoles of the same instance do not count.
    return (
        b"/usr/sbin/asterisk" in cmdline
        and b"-f" in cmdline
        and not {b"-r", b"-rx", b"-R"} & set(cmdline)
        and f"/etc/asterisk-{name}/asterisk.conf".encode() in cmdline
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _instance_dirs(name: str) -> tuple[str, ...]:
    return tuple(
        f"{base}-{name}"
        for base in (
            "etc/asterisk",
            "var/lib/asterisk",
            "var/spool/asterisk",
            "var/run/asterisk",
            "var/log/asterisk",
            "var/cache/asterisk",
        )
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def install_config(root: Path, setup: Setup, settings: Settings) -> None:
    """Writes the rendered configuration into the instance's folders in the root."""
    files = render.render(setup, settings)
    for rel in _instance_dirs(setup.instance):
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / f"var/lib/asterisk-{setup.instance}/keys").mkdir(exist_ok=True)
    etc = root / f"etc/asterisk-{setup.instance}"
    for old in etc.glob("*.conf"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        _write_atomic(etc / name, text.encode("utf-8"))
    _write_atomic(root / MOH_DIR / "ivr12333-tune.sln", moh.tune_sln())


def install_sounds(root: Path, settings: Settings) -> int:
    """Copies the built prompts (every folder under <data_dir>/sounds/zh) into the root.

    Returns how many files were copied; none is not an error (the prompts may not be built
    yet), only a warning: Asterisk then logs each missing prompt and the call goes on.
    """
    source = settings.data_dir / "sounds" / "zh"
    folders = [p for p in source.iterdir() if p.is_dir()] if source.is_dir() else []
    copied = 0
    for folder in folders:
        target = root / SOUNDS_DIR / folder.name
        fresh = target.with_name(f".{folder.name}.new-{os.getpid()}")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(folder, fresh)
        copied += sum(1 for p in fresh.rglob("*") if p.is_file())
        # Swap folders so a running Asterisk never sees a half-copied set.
        old = target.with_name(f".{folder.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        fresh.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    copied += _install_number_files(root)
    if copied == 0:
        log.warning("asterisk_no_prompts", looked_in=str(source))
    else:
        log.info("asterisk_prompts_installed", files=copied)
    return copied


def _install_number_files(root: Path) -> int:
    """Asterisk's own Mandarin numbers (queue positions), from the project's number prompts.

    Asterisk ships no Mandarin sounds, and `SayNumber` in zh looks for digits/N; without
    them a queue position would be read out in English.
    """
    prompts = root / SOUNDS_DIR / "ivr12333"
    digits = root / SOUNDS_DIR / "digits"
    copied = 0
    for n in range(1, 21):
        for source in prompts.glob(f"number-{n}.*"):
            _write_atomic(digits / f"{n}{source.suffix}", source.read_bytes())
            copied += 1
    return copied


def config_problems(log_text: str) -> list[str]:
    """Log lines that show a configuration problem (empty when everything loaded)."""
    problems = []
    for line in log_text.splitlines():
        if any(h in line for h in _HARMLESS):
            continue
        logged = _LOGGED.search(line)
        if _ALWAYS.search(line) or (
            logged is not None
            and (logged.group(1) == "ERROR" or _CONFIG_CODE.search(logged.group(2)))
        ):
            problems.append(line)
    return problems


def other_warnings(log_text: str) -> list[str]:
    """Warnings that are not configuration problems (reported, not fatal)."""
    problems = set(config_problems(log_text))
    return [
        line
        for line in log_text.splitlines()
        if _LOGGED.search(line) and line not in problems and not any(h in line for h in _HARMLESS)
    ]


def _leftover_mounts(root: Path) -> list[str]:
    prefix = str(root.resolve())
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _unmount_leftovers(root: Path) -> None:
    # Someone may have mounted /proc or /dev into the root by hand; leave nothing behind.
    for point in sorted(_leftover_mounts(root), key=len, reverse=True):
        log.warning("asterisk_root_unmounting", mount=point)
        subprocess.run(["umount", "-l", point], check=False, timeout=30)


def _resolve_agents(agents: bool | Sequence[Agent]) -> tuple[Agent, ...]:
    if agents is True:
        return DEFAULT_AGENTS
    if agents is False:
        return ()
    return tuple(agents)


def up(
    agi_servers: Sequence[str] = ("127.0.0.1:4573",),
    sip_port: int = 5060,
    agents: bool | Sequence[Agent] = True,
    *,
    instance: str = "local",
    queue_wait_s: int = 120,
    clock_epoch: int | None = None,
    overrides: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    check: bool = True,
) -> Instance:
    """Starts a local Asterisk with the project's dialplan and returns once it has booted.

    `agents`: True for the default phones agent1 and agent2 (softphones that register),
    False for none, or explicit `Agent`s. With `check`, a configuration problem in the log
    stops Asterisk and raises `AsteriskError`. An instance of the same name that is already
    running is stopped first.
    """
    settings = settings or get_settings()
    setup = Setup(
        agi_servers=tuple(agi_servers),
        sip_port=sip_port,
        agents=_resolve_agents(agents),
        instance=instance,
        queue_wait_s=queue_wait_s,
        clock_epoch=clock_epoch,
        overrides=dict(overrides or {}),
    )
    data_dir = settings.data_dir
    root = ensure_root(data_dir)
    down(instance, settings=settings)
    if not _port_free(sip_port):
        raise AsteriskError(f"UDP 127.0.0.1:{sip_port} is in use; choose another SIP port")
    install_config(root, setup, settings)
    # Sounds are shared by all instances: one installer at a time.
    with (data_dir / "asterisk-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The prompts as the catalogue says now (a quick no-op when nothing changed), so a
        # new checkout's first Asterisk never runs without them.
        build_prompts(data_dir / "sounds")
        install_sounds(root, settings)
        chown_asterisk_dirs(root)
    _unmount_leftovers(root)

    log_path = data_dir / f"asterisk-{instance}.log"
    started = time.time()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                "chroot",
                str(root),
                "/usr/sbin/asterisk",
                "-f",
                "-C",
                f"/etc/asterisk-{instance}/asterisk.conf",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C in the shell that ran `asterisk up` must not stop it.
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    inst = Instance(root, instance, proc.pid, sip_port, setup.agi_servers, log_path, started)
    _state_file(data_dir, instance).write_text(inst.to_json())
    try:
        _wait_booted(inst, proc)
        if check:
            text = inst.log_text()
            problems = config_problems(text)
            if problems:
                raise AsteriskError("configuration problems:\n" + "\n".join(problems[:20]))
            for line in other_warnings(text)[:20]:
                log.warning("asterisk_startup_warning", line=line)
    except BaseException:
        down(instance, settings=settings)
        raise
    log.info(
        "asterisk_up",
        instance=instance,
        pid=proc.pid,
        sip_port=sip_port,
        agi_servers=list(setup.agi_servers),
        boot_s=round(time.time() - started, 2),
    )
    return inst


def _wait_booted(inst: Instance, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = inst.log_text()[-2000:]
            raise AsteriskError(f"Asterisk exited with {proc.returncode} while starting:\n{tail}")
        try:
            left = max(1.0, deadline - time.monotonic())
            out = inst.cli("core waitfullybooted", timeout=left)
            if "fully booted" in out:
                return
        except (AsteriskError, subprocess.TimeoutExpired) as exc:
            last_error = str(exc)  # the control socket is not there yet
        time.sleep(0.2)
    raise AsteriskError(f"Asterisk did not boot within {BOOT_TIMEOUT_S:.0f} s: {last_error}")


def status(instance: str = "local", settings: Settings | None = None) -> Instance | None:
    """The running instance, or None."""
    settings = settings or get_settings()
    state = _state_file(settings.data_dir, instance)
    if not state.exists():
        return None
    try:
        inst = Instance.from_json(state.read_text())
    except (ValueError, KeyError):
        return None
    return inst if inst.is_running() else None


def down(instance: str = "local", *, settings: Settings | None = None, purge: bool = False) -> bool:
    """Stops the instance if it runs (CLI `core stop now`, then signals). True if it ran.

    Also finds an Asterisk of this instance whose state file was lost. `purge` also removes
    the instance's folders in the root (throw-away test instances); its log stays for a
    post-mortem.
    """
    settings = settings or get_settings()
    state = _state_file(settings.data_dir, instance)
    root = root_path(settings.data_dir)
    pids = set(_find_pids(instance))
    if state.exists():
        with contextlib.suppress(ValueError, KeyError):
            recorded = Instance.from_json(state.read_text())
            root = recorded.root
            if recorded.is_running():
                pids.add(recorded.pid)
    if pids:
        with contextlib.suppress(AsteriskError, subprocess.TimeoutExpired):
            _cli(root, instance, "core stop now", timeout=5)
        for pid in sorted(pids):
            if not _wait_exit(pid, instance, STOP_TIMEOUT_S / 2):
                _signal(pid, instance, signal.SIGTERM)
                if not _wait_exit(pid, instance, STOP_TIMEOUT_S / 2):
                    _signal(pid, instance, signal.SIGKILL)
                    _wait_exit(pid, instance, 5)
            log.info("asterisk_down", instance=instance, pid=pid)
    for pid in pids:
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    state.unlink(missing_ok=True)
    if root.exists():
        _unmount_leftovers(root)
        if purge:
            for rel in _instance_dirs(instance):
                shutil.rmtree(root / rel, ignore_errors=True)
    return bool(pids)


def _find_pids(name: str) -> list[int]:
    """Asterisk processes of this instance, found by their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_asterisk(int(entry.name), name):
            found.append(int(entry.name))
    return found


def _signal(pid: int, name: str, sig: signal.Signals) -> None:
    if _is_our_asterisk(pid, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_exit(pid: int, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = _CHILDREN.get(pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.1)
        if not _is_our_asterisk(pid, name):
            return True
        time.sleep(0.1)
    return not _is_our_asterisk(pid, name)
