"""Secrets a development or test install makes for itself, once, in its git-ignored folder.

Each secret is a random token in `<data_dir>/secrets/<name>`: the file is mode 0600 in a
0700 folder owned by the user running the service. A new token is written whole to a private
temporary file and then hard-linked to its name; linking fails if the name exists, so when
two processes start at once the loser reads the winner's token and both agree. A reader
therefore never sees a half-written file.

Production never uses these: it brings its own secrets (see `backend.settings`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

SECRETS_SUBDIR = "secrets"
# Secret names become file names.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# 32 random bytes: 43 URL-safe characters.
TOKEN_BYTES = 32


class LocalSecretError(RuntimeError):
    """A local secret cannot be made or read safely; the message says what to do."""


def secrets_dir(data_dir: Path) -> Path:
    return data_dir / SECRETS_SUBDIR


def private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) if missing; refuse a symlink or another user's folder, and
    take group and other access away from an existing one."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise LocalSecretError(f"{path} is not a folder")
    if info.st_uid != os.geteuid():
        raise LocalSecretError(
            f"{path} belongs to another user (uid {info.st_uid}); run as that user "
            "or remove the folder"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _read(path: Path) -> str | None:
    """The token in `path`, or None if there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symlink put in place of the secret
        raise LocalSecretError(f"cannot open {path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="ascii") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise LocalSecretError(f"{path} is not a file of this user; remove it")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
        token = handle.read().strip()
    if not token:
        raise LocalSecretError(f"{path} is empty; remove it and a new secret is made")
    return token


def local_secret(data_dir: Path, name: str) -> str:
    """The install's secret `name`, made on first use (see the module docstring)."""
    if not _NAME_RE.match(name):
        raise ValueError(f"not a secret name: {name!r}")
    folder = private_dir(secrets_dir(data_dir))
    path = folder / name
    existing = _read(path)
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(TOKEN_BYTES)
    partial = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(fd)
        # Another process may have made it first: then its token is the one.
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    made = _read(path)
    if made is None:
        raise LocalSecretError(f"{path} vanished while being made")
    return made


def read_secret_file(path: Path, variable: str) -> str:
    """A secret an operator keeps in a file (e.g. a container secret), trailing newline off.

    `variable` names the setting in messages; the secret itself is never in one.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path} ({exc.strerror})") from None
    secret = text.strip()
    if not secret:
        raise ValueError(f"{variable}: {path} is empty")
    return secret
