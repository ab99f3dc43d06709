"""A local Asterisk 22, run from the Debian sid root folder, for `make run` and the tests.

`up()` installs the project's configuration and prompts into the root, starts Asterisk in
the background and waits until it has fully booted; `down()` stops it. Nothing is mounted
into the root: Asterisk needs neither /proc nor more of /dev than debootstrap creates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from asterisk_local.caller import udp_port_free
from asterisk_local.install import install_config, install_sounds, instance_dirs
from asterisk_local.logscan import config_problems, other_warnings
from asterisk_local.root import chown_asterisk_dirs, ensure_root, root_path
from asterisk_local.supervise import (
    CHILDREN,
    find_pids,
    is_our_asterisk,
    send_signal,
    unmount_leftovers,
    wait_exit,
)
from backend.settings import Settings, get_settings
from dialplan.render import DEFAULT_AGENTS, Agent, Setup
from prompts.build import build as build_prompts

log = structlog.get_logger(__name__)

BOOT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 20.0


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
        return is_our_asterisk(self.pid, self.name)

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
    if not udp_port_free(sip_port):
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
    unmount_leftovers(root)

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
    CHILDREN[proc.pid] = proc
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
    pids = set(find_pids(instance))
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
            if not wait_exit(pid, instance, STOP_TIMEOUT_S / 2):
                send_signal(pid, instance, signal.SIGTERM)
                if not wait_exit(pid, instance, STOP_TIMEOUT_S / 2):
                    send_signal(pid, instance, signal.SIGKILL)
                    wait_exit(pid, instance, 5)
            log.info("asterisk_down", instance=instance, pid=pid)
    for pid in pids:
        child = CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    state.unlink(missing_ok=True)
    if root.exists():
        unmount_leftovers(root)
        if purge:
            for rel in instance_dirs(instance):
                shutil.rmtree(root / rel, ignore_errors=True)
    return bool(pids)
