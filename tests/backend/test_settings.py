"""Settings: production needs its own pepper, development makes its own once per install,
office hours and limits are validated."""

from __future__ import annotations

import ast
import datetime as dt
import multiprocessing
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import backend.settings
from backend.localsecrets import LocalSecretError, local_secret
from backend.settings import InsecureBind, Settings, get_settings, is_loopback, reset_settings
from tests.conftest import ROOT

EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 (the wildcard bind these tests expect refused)


def settings_of(**values: Any) -> Settings:
    """Settings from these values and the environment, never from an env file."""
    return Settings(**{"_env_file": None, **values})


@pytest.fixture
def no_pepper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment without IVR_PIN_PEPPER (restored afterwards)."""
    monkeypatch.delenv("IVR_PIN_PEPPER", raising=False)
    monkeypatch.delenv("IVR_PIN_PEPPER_FILE", raising=False)
    yield
    monkeypatch.undo()


def test_production_refuses_to_start_without_a_pepper(no_pepper: None, tmp_path: Path) -> None:
    """IVR_ENV=prod without IVR_PIN_PEPPER(_FILE) is a configuration error; nothing is made."""
    with pytest.raises(ValidationError, match="IVR_PIN_PEPPER"):
        settings_of(env="prod", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_production_with_a_pepper(no_pepper: None) -> None:
    """With its own pepper production starts and uses it."""
    settings = settings_of(env="prod", pin_pepper="p" * 32)
    assert settings.pepper_bytes == b"p" * 32


def test_production_reads_its_pepper_from_a_file(
    no_pepper: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IVR_PIN_PEPPER_FILE (a container secret) is read, its trailing newline dropped."""
    secret = tmp_path / "pepper"
    secret.write_text("q" * 40 + "\n")
    monkeypatch.setenv("IVR_PIN_PEPPER_FILE", str(secret))
    settings = settings_of(env="prod")
    assert settings.pepper_bytes == b"q" * 40
    assert not settings.development_secrets
    assert "q" * 40 not in repr(settings)


@pytest.mark.parametrize(
    ("content", "says"), [(None, "cannot read"), ("\n", "empty"), ("both", "not both")]
)
def test_pepper_file_problems_are_clear(
    no_pepper: None, tmp_path: Path, content: str | None, says: str
) -> None:
    """A missing or empty pepper file, or a file and a value at once, stop the start."""
    secret = tmp_path / "pepper"
    values: dict[str, Any] = {"env": "prod", "pin_pepper_file": secret}
    if content == "both":
        secret.write_text("r" * 40)
        values["pin_pepper"] = "s" * 40
    elif content is not None:
        secret.write_text(content)
    with pytest.raises(ValidationError, match=says) as caught:
        settings_of(**values)
    assert "r" * 40 not in str(caught.value) and "s" * 40 not in str(caught.value)


def test_no_pepper_constant_in_the_settings(no_pepper: None, tmp_path: Path) -> None:
    """Outside production the pepper is random and the install's own: two installs differ."""
    assert not hasattr(backend.settings, "DEV_PEPPER")
    peppers = {settings_of(env="dev", data_dir=tmp_path / f"install{n}").pepper_bytes for n in "ab"}
    assert len(peppers) == 2
    assert all(len(p) >= 43 for p in peppers)  # 32 random bytes


def test_development_makes_its_pepper_once_per_install(no_pepper: None, tmp_path: Path) -> None:
    """Dev and test make the pepper on first use, 0600 in a 0700 folder, then reuse it."""
    data_dir = tmp_path / "data"
    first = settings_of(env="dev", data_dir=data_dir)
    assert first.development_secrets
    assert not (data_dir / "secrets").exists()  # made when first needed, not before
    pepper = first.pepper_bytes
    folder, path = data_dir / "secrets", data_dir / "secrets" / "pin_pepper"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().strip() == pepper
    assert settings_of(env="test", data_dir=data_dir).pepper_bytes == pepper
    assert [p.name for p in folder.iterdir()] == ["pin_pepper"]


def test_loose_permissions_are_tightened(no_pepper: None, tmp_path: Path) -> None:
    """A secrets folder or file someone opened up is closed again when read."""
    folder = tmp_path / "secrets"
    pepper = settings_of(env="dev", data_dir=tmp_path).pepper_bytes
    folder.chmod(0o755)
    (folder / "pin_pepper").chmod(0o644)
    assert settings_of(env="dev", data_dir=tmp_path).pepper_bytes == pepper
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "pin_pepper").stat().st_mode) == 0o600


def test_a_symlinked_secret_is_refused(tmp_path: Path) -> None:
    """A secret replaced by a symlink (to a file someone else chose) is not followed."""
    local_secret(tmp_path, "pin_pepper")
    elsewhere = tmp_path / "chosen"
    elsewhere.write_text("known-value-of-an-attacker")
    path = tmp_path / "secrets" / "pin_pepper"
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(LocalSecretError):
        local_secret(tmp_path, "pin_pepper")


def _make_secret_when_told(data_dir: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(local_secret(Path(data_dir), "pin_pepper"))


def test_processes_starting_at_once_agree(tmp_path: Path) -> None:
    """Eight processes released together each ask for the secret: one token, no debris."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(8), context.Queue()
    workers = [
        context.Process(target=_make_secret_when_told, args=(str(tmp_path), barrier, out))
        for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    tokens = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert len(set(tokens)) == 1
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["pin_pepper"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (EVERY_ADDRESS, False),
        ("::", False),
        ("", False),
        ("192.0.2.10", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    """Only addresses (and names resolving only to addresses) of this machine are loopback."""
    assert is_loopback(host) is loopback


def test_no_public_bind_on_development_secrets(no_pepper: None, tmp_path: Path) -> None:
    """Development secrets serve loopback only; production's own secrets serve anywhere."""
    dev = settings_of(env="dev", data_dir=tmp_path)
    dev.check_bind("127.0.0.1", "FastAGI server")
    for host in (EVERY_ADDRESS, "192.0.2.10", ""):
        with pytest.raises(InsecureBind, match="development secrets"):
            dev.check_bind(host, "FastAGI server")
    settings_of(env="prod", pin_pepper="p" * 32).check_bind(EVERY_ADDRESS, "console")


def test_tests_run_on_a_random_pepper() -> None:
    """This run's pepper is written in no test file: each run makes its own."""
    pepper = os.environ["IVR_PIN_PEPPER"]
    assert len(pepper) >= 43
    assert get_settings().pepper_bytes == pepper.encode()
    for source in (ROOT / "tests").rglob("*.py"):
        assert pepper not in source.read_text(encoding="utf-8"), source


_SECRET_WORDS = ("SECRET", "PEPPER", "PASSWORD", "PASSPHRASE", "TOKEN")
# Values that name a secret rather than being one: environment variables, file names.
_NAMES_A_SECRET = re.compile(r"^(?:[A-Z][A-Z0-9_]*|[a-z][a-z0-9_]*)$")


def _string_constants_named_secret(tree: ast.AST) -> list[str]:
    """Names of constants that sound like a secret and hold a string that could be one."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign | ast.AnnAssign) or not isinstance(
            node.value, ast.Constant
        ):
            continue
        value = node.value.value
        if not isinstance(value, str) or len(value) < 8 or _NAMES_A_SECRET.match(value):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = target.id if isinstance(target, ast.Name) else ""
            if any(word in name.upper() for word in _SECRET_WORDS):
                found.append(name)
    return found


def test_the_secret_constant_finder_finds_one() -> None:
    """The source scan below recognises a default secret, and not the name of one."""
    tree = ast.parse(
        'DEV_PEPPER = "dev-only-pepper-not-for-production"\n'
        'PASSWORD_ENV = "IVR_SUPERVISOR_PASSWORD"\nSECRETS_SUBDIR = "secrets"\n'
    )
    assert _string_constants_named_secret(tree) == ["DEV_PEPPER"]


def test_no_secret_constant_in_the_source() -> None:
    """No module of the service holds a secret-named string constant (a default secret)."""
    offenders = []
    for package in ("backend", "ivr", "cli", "console", "dialplan", "prompts"):
        for source in (ROOT / package).rglob("*.py"):
            tree = ast.parse(source.read_text(encoding="utf-8"))
            offenders += [
                f"{source.relative_to(ROOT)}: {n}" for n in _string_constants_named_secret(tree)
            ]
    assert offenders == []


def test_a_fresh_process_in_dev_needs_no_configuration(tmp_path: Path) -> None:
    """`IVR_ENV=dev` with nothing else set starts and hashes with the install's own pepper."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env |= {"IVR_ENV": "dev", "IVR_DATA_DIR": str(tmp_path), "IVR_ENV_FILE": "/nonexistent"}
    code = "from backend.settings import get_settings; print(len(get_settings().pepper_bytes))"
    ran = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "43"
    assert (tmp_path / "secrets" / "pin_pepper").read_text().strip() != ""


def test_pepper_is_not_shown(no_pepper: None) -> None:
    """The pepper is a secret: the settings' repr does not contain it."""
    settings = settings_of(env="prod", pin_pepper="very-secret-pepper-value")
    assert "very-secret-pepper-value" not in repr(settings)


def test_office_hours_are_parsed() -> None:
    """Sessions are comma-separated start-end pairs."""
    settings = settings_of(office_hours=" 08:00-11:30 ,13:00-17:45")
    assert settings.office_sessions == [
        (dt.time(8, 0), dt.time(11, 30)),
        (dt.time(13, 0), dt.time(17, 45)),
    ]


@pytest.mark.parametrize("value", ["12:00-09:00", "09:00-09:00", "9-12", "09:00", "nine-twelve"])
def test_bad_office_hours_are_refused(value: str) -> None:
    """Sessions ending before they start, or not written as times, are refused."""
    with pytest.raises(ValidationError):
        settings_of(office_hours=value)


@pytest.mark.parametrize("limit", [0, -1, 21])
def test_lockout_limit_bounds(limit: int) -> None:
    """The lockout limit stays between 1 and 20."""
    with pytest.raises(ValidationError):
        settings_of(lockout_limit=limit)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """IVR_ variables reach the cached settings after reset_settings()."""
    monkeypatch.setenv("IVR_LOCKOUT_LIMIT", "4")
    monkeypatch.setenv("IVR_LOSS_REPORT_VALID_WORKING_DAYS", "7")
    reset_settings()
    try:
        assert get_settings().lockout_limit == 4
        assert get_settings().loss_report_valid_working_days == 7
        assert get_settings() is get_settings()
    finally:
        monkeypatch.undo()
        reset_settings()
    assert get_settings().lockout_limit == 6


def test_now_override_only_outside_production() -> None:
    """A pretended time needs a time zone and is refused in production."""
    moment = dt.datetime(2026, 9, 15, 10, 0, tzinfo=dt.UTC)
    assert settings_of(now_override=moment).now_override == moment
    with pytest.raises(ValidationError, match="time zone"):
        settings_of(now_override=dt.datetime(2026, 9, 15, 10, 0))
    with pytest.raises(ValidationError, match="development"):
        settings_of(env="prod", pin_pepper="p" * 32, now_override=moment)
