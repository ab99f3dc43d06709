"""The Debian sid root folder that carries Asterisk 22 (Debian 12 has no Asterisk package).

Built once with debootstrap into a temporary folder and renamed when complete, so an
interrupted build is never reused; a lock keeps two processes from building it at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

MIRROR = "http://deb.debian.org/debian"
SUITE = "sid"
PACKAGES = ("asterisk", "asterisk-modules")
BUILD_TIMEOUT_S = 1800

# Asterisk's folders inside the root belong to the root's own asterisk user, whose uid is
# someone else on the host; we run Asterisk as root, so they must belong to root.
ASTERISK_DIRS = (
    "etc/asterisk",
    "var/lib/asterisk",
    "var/log/asterisk",
    "var/spool/asterisk",
    "var/run/asterisk",
    "var/cache/asterisk",
    "usr/share/asterisk",
)


class RootError(RuntimeError):
    """The root folder could not be built."""


def root_path(data_dir: Path) -> Path:
    return data_dir / "asterisk-root"


def is_complete(root: Path) -> bool:
    return (root / "usr/sbin/asterisk").is_file() and (root / "etc/asterisk").is_dir()


def _ensure_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    log.info("installing_debootstrap")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
        check=True,
        env=env,
        timeout=600,
    )


def chown_asterisk_dirs(root: Path) -> None:
    for rel in ASTERISK_DIRS:
        folder = root / rel
        folder.mkdir(parents=True, exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(folder):
            os.chown(dirpath, 0, 0)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), 0, 0)


def ensure_root(data_dir: Path) -> Path:
    """The complete root folder, building it first if needed (about a minute, 500 MB)."""
    root = root_path(data_dir)
    if is_complete(root):
        return root
    if os.geteuid() != 0:
        raise RootError("building the Asterisk root folder needs root (debootstrap, chroot)")
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "asterisk-root.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if is_complete(root):
            return root
        _ensure_debootstrap()
        # Leftovers of interrupted builds: nobody else is building while we hold the lock.
        for stale in data_dir.glob("asterisk-root.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        partial = data_dir / f"asterisk-root.partial-{os.getpid()}"
        log_path = data_dir / "asterisk-root.debootstrap.log"
        started = time.monotonic()
        log.info("asterisk_root_building", root=str(root), log=str(log_path))
        with log_path.open("w") as out:
            result = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(partial),
                    MIRROR,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        if result.returncode != 0 or not is_complete(partial):
            shutil.rmtree(partial, ignore_errors=True)
            raise RootError(f"debootstrap failed (exit {result.returncode}); see {log_path}")
        chown_asterisk_dirs(partial)
        # A stale incomplete root (from an older layout) is replaced, never merged.
        if root.exists():
            shutil.rmtree(root)
        partial.rename(root)
        log.info("asterisk_root_ready", seconds=round(time.monotonic() - started, 1))
    return root
