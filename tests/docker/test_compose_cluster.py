"""The cluster deployment's files, checked without any container engine: compose.cluster.yaml
on the single box's images, secrets only from required variables, the app following the
writable database node, the test override on loopback only, and the cluster images'
Dockerfiles. `make cluster-test` (tests/deploy/cluster.py) runs them for real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
CLUSTER = DOCKER / "compose.cluster.yaml"
SINGLE = DOCKER / "compose.yaml"
OVERRIDE = DOCKER / "deploy-test" / "compose.cluster-override.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
SECRETS = ("POSTGRES_PASSWORD", "IVR_PIN_PEPPER", "IVR_REPLICATION_PASSWORD")
APP_SERVICES = ("migrate", "agi1", "agi2", "console")
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(:?[?\-])?([^}]*)\}")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _services(path: Path = CLUSTER) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _load(path)["services"]
    return services


def test_the_cluster_has_every_part() -> None:
    """etcd, two Patroni nodes, the database made and migrated once, two FastAGI servers,
    the console, two Asterisk nodes and Kamailio."""
    assert set(_services()) == {
        *("etcd", "pg1", "pg2", "dbinit", "migrate", "agi1", "agi2", "console"),
        *("asterisk1", "asterisk2", "kamailio"),
    }


def test_same_app_and_asterisk_images_as_the_single_box() -> None:
    """The app services and the Asterisk nodes use the single box's images and builds."""
    single, cluster = _services(SINGLE), _services()
    for name in APP_SERVICES:
        assert cluster[name]["image"] == single[name]["image"]
        assert cluster[name]["build"] == single[name]["build"]
        assert cluster[name]["command"] == single[name]["command"]
    for node in ("asterisk1", "asterisk2"):
        assert cluster[node]["image"] == single["asterisk"]["image"]
        assert cluster[node]["build"] == single["asterisk"]["build"]


def test_migrations_once_before_the_app() -> None:
    """dbinit makes the database, migrate runs after it, the app services after migrate."""
    services = _services()
    assert services["migrate"]["depends_on"] == {
        "dbinit": {"condition": "service_completed_successfully"}
    }
    for name in ("agi1", "agi2", "console"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["dbinit"]["restart"] == services["migrate"]["restart"] == "no"


def test_the_app_follows_the_writable_node() -> None:
    """One URL naming both database nodes, read-write only: no restart when the primary
    changes."""
    for name in APP_SERVICES:
        url = _services()[name]["environment"]["IVR_DATABASE_URL"]
        assert "host=pg1,pg2" in url and "target_session_attrs=read-write" in url, name


def test_secrets_come_only_from_required_variables() -> None:
    """Every password, pepper or database URL is `${VAR:?message}` of a known secret."""
    for name, service in _services().items():
        for key, value in (service.get("environment") or {}).items():
            if not any(w in key for w in ("PASSWORD", "SECRET", "PEPPER", "DATABASE_URL")):
                continue
            refs = _VAR.findall(str(value))
            assert refs, f"{name}.{key} is hard-coded"
            for var, op, message in refs:
                assert var in SECRETS, f"{name}.{key} uses {var}"
                assert op == ":?" and message.strip(), f"{name}.{key}"


def test_env_example_documents_every_variable() -> None:
    """Each `${VAR}` of compose.cluster.yaml is in .env.example with a comment; secrets
    are empty there."""
    used = {m.group(1) for m in _VAR.finditer(CLUSTER.read_text(encoding="utf-8"))}
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            documented[key] = (i > 0 and lines[i - 1].startswith("#"), value)
    assert used <= set(documented), sorted(used - set(documented))
    assert all(commented for commented, _ in documented.values())
    assert all(documented[s][1] == "" for s in SECRETS)


def test_the_test_override_keeps_everything_on_loopback() -> None:
    """Every service of the test override on the host's network, and every address it
    names is 127.0.0.1."""
    override = _services(OVERRIDE)
    assert set(override) == set(_services())
    text = OVERRIDE.read_text(encoding="utf-8")
    for name, service in override.items():
        assert service["network_mode"] == "host", name
    for address in re.findall(r"(?:://|=|\s|\")(\d+\.\d+\.\d+\.\d+)", text):
        assert address == "127.0.0.1", address
    assert ALL_INTERFACES not in text


def test_kamailio_is_given_what_its_config_reads() -> None:
    """The compose command sets the two names kamailio.cfg takes from the command line."""
    cfg = (ROOT / "cluster" / "kamailio.cfg").read_text(encoding="utf-8")
    for services in (_services(), _services(OVERRIDE)):
        command = services["kamailio"]["command"]
        defined = [command[i + 1].split("=", 1)[0] for i, a in enumerate(command) if a == "-A"]
        assert defined == ["LISTEN", "DISPATCHER_LIST"]
        for name in defined:
            assert f"#!ifndef {name}" in cfg
    listing = (DOCKER / "cluster" / "dispatcher.list").read_text(encoding="utf-8")
    nodes = [line.split()[1] for line in listing.splitlines() if line and line[0] != "#"]
    assert nodes == ["sip:asterisk1:5060", "sip:asterisk2:5060"]


def test_cluster_dockerfiles_take_their_base_and_copy_what_exists() -> None:
    """db.Dockerfile and kamailio.Dockerfile start from the BASE_IMAGE build argument, and
    each COPY source exists and passes the Dockerfile's allow-list."""
    for name in ("db.Dockerfile", "kamailio.Dockerfile"):
        text = (DOCKER / name).read_text(encoding="utf-8")
        assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.M), name
        assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), name
        allowed = {
            line[1:]
            for line in (DOCKER / f"{name}.dockerignore").read_text().splitlines()
            if line.startswith("!")
        }
        for source in re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", text, re.M):
            assert (ROOT / source).is_file(), source
            assert source in allowed, source
