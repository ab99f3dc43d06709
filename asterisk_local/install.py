"""The project's Asterisk configuration, hold music and prompts, installed into the root.

Each local instance has its own folders in the root (`/etc/asterisk-NAME`, ...); the
prompts are shared by all instances.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import structlog

from backend.settings import Settings
from dialplan import moh, render
from dialplan.render import Setup

log = structlog.get_logger(__name__)

MOH_DIR = "usr/share/asterisk/moh-ivr12333"
SOUNDS_DIR = "usr/share/asterisk/sounds/zh"


def instance_dirs(name: str) -> tuple[str, ...]:
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


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def install_config(root: Path, setup: Setup, settings: Settings) -> None:
    """Writes the rendered configuration into the instance's folders in the root."""
    files = render.render(setup, settings)
    for rel in instance_dirs(setup.instance):
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / f"var/lib/asterisk-{setup.instance}/keys").mkdir(exist_ok=True)
    etc = root / f"etc/asterisk-{setup.instance}"
    for old in etc.glob("*.conf"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        write_atomic(etc / name, text.encode("utf-8"))
    write_atomic(root / MOH_DIR / "ivr12333-tune.sln", moh.tune_sln())


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
            write_atomic(digits / f"{n}{source.suffix}", source.read_bytes())
            copied += 1
    return copied
