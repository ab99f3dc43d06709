"""The local Asterisk's processes, found and stopped through /proc, and the root's mounts.

Asterisk runs in a chroot started by this project, not under a service manager: its
processes are recognised by their command line (pids get reused), signalled only when they
are an Asterisk of the instance in question, and reaped when this process started them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# Asterisk processes this process started, so we can reap them.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def is_our_asterisk(pid: int, name: str) -> bool:
    """Whether `pid` is an Asterisk of this instance (pids get reused)."""
    child = CHILDREN.get(pid)
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


def _leftover_mounts(root: Path) -> list[str]:
    prefix = str(root.resolve())
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def unmount_leftovers(root: Path) -> None:
    # Someone may have mounted /proc or /dev into the root by hand; leave nothing behind.
    for point in sorted(_leftover_mounts(root), key=len, reverse=True):
        log.warning("asterisk_root_unmounting", mount=point)
        subprocess.run(["umount", "-l", point], check=False, timeout=30)


def find_pids(name: str) -> list[int]:
    """Asterisk processes of this instance, found by their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_our_asterisk(int(entry.name), name):
            found.append(int(entry.name))
    return found


def send_signal(pid: int, name: str, sig: signal.Signals) -> None:
    if is_our_asterisk(pid, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_exit(pid: int, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = CHILDREN.get(pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.1)
        if not is_our_asterisk(pid, name):
            return True
        time.sleep(0.1)
    return not is_our_asterisk(pid, name)
