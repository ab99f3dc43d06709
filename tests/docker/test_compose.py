"""The Docker deployment, checked without a Docker engine.

Parses docker/compose.yaml and the Dockerfiles; runs `docker-compose config` when a compose
implementation is installed; renders the container's Asterisk configuration.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from backend.settings import Settings
from cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILES = ("app.Dockerfile", "asterisk.Dockerfile")
SERVICES = {"postgres", "migrate", "agi1", "agi2", "console", "asterisk", "prometheus"}
LONG_RUNNING = SERVICES - {"migrate"}
SECRETS = ("POSTGRES_PASSWORD", "IVR_PIN_PEPPER")
SHARED_START = "# --- shared build stage"
SHARED_END = "# --- end of shared build stage"
# The containers' own network namespace: published to nothing but the compose network.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
TEST_SECRETS = {name: f"test{name.lower().replace('_', '')}0" for name in SECRETS}

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(:?[?\-])?([^}]*)\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _dockerfile(name: str) -> str:
    return (DOCKER / name).read_text(encoding="utf-8")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every service command and every Dockerfile CMD."""
    found = []
    for name, service in _services().items():
        if "command" in service:
            command = service["command"]
            argv = command if isinstance(command, list) else shlex.split(command)
            found.append((f"service {name}", [str(a) for a in argv]))
    for dockerfile in DOCKERFILES:
        for word, rest in _instructions(_dockerfile(dockerfile)):
            if word == "CMD":
                found.append((dockerfile, [str(a) for a in yaml.safe_load(rest)]))
    return found


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_asterisk", DOCKER / "render_asterisk.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compose_binary() -> list[str] | None:
    """A compose implementation that runs here: docker-compose, or the docker CLI plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_compose_has_every_service() -> None:
    """compose.yaml parses as YAML and defines exactly the seven services."""
    assert set(_services()) == SERVICES


def test_every_long_running_service_has_a_health_check() -> None:
    """Each service but the one-shot migration has a health check with a test command."""
    for name in LONG_RUNNING:
        check = _services()[name].get("healthcheck")
        assert check and check.get("test"), name
        assert not check.get("disable"), name


def test_health_checks_probe_the_right_thing() -> None:
    """pg_isready, an AGI health request, a GET of the console, Asterisk fully booted."""
    services = _services()

    def test_of(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"])

    assert "pg_isready" in test_of("postgres")
    for agi in ("agi1", "agi2"):
        assert test_of(agi) == "CMD ivr12333 agi check --port 4573"
    assert test_of("console") == "CMD ivr12333 console check --port 8333"
    assert test_of("asterisk") == "CMD asterisk-health"
    assert "http://127.0.0.1:9090/-/ready" in test_of("prometheus")
    assert re.search(
        r'^HEALTHCHECK .* CMD \["asterisk-health"\]$', _dockerfile("asterisk.Dockerfile"), re.M
    )
    script = (DOCKER / "asterisk-health.sh").read_text(encoding="utf-8")
    assert "asterisk -rx 'core waitfullybooted'" in script and "fully booted" in script
    # Each argument of a health check is one word: podman's Docker API splits at spaces.
    for name in LONG_RUNNING:
        assert all(" " not in arg for arg in services[name]["healthcheck"]["test"]), name


def test_restart_policies() -> None:
    """Long-running services restart unless stopped; the migration runs once."""
    services = _services()
    for name in LONG_RUNNING:
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"].get("restart") == "no"


def test_depends_on_conditions() -> None:
    """Migration waits for a healthy database; apps wait for a completed migration."""
    services = _services()
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("agi1", "agi2", "console"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    # Failover between agi1 and agi2 must not wait for both to be healthy.
    assert services["asterisk"]["depends_on"] == {
        "agi1": {"condition": "service_started"},
        "agi2": {"condition": "service_started"},
    }


def test_secrets_come_only_from_required_variables() -> None:
    """Every secret-bearing value is `${VAR:?message}` for one of the three secrets."""
    for name, service in _services().items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        for key, value in env.items():
            secretish = any(w in key for w in ("PASSWORD", "SECRET", "PEPPER", "DATABASE_URL"))
            if not secretish:
                continue
            refs = _VAR.findall(str(value))
            assert refs, f"{name}.{key} is hard-coded"
            for var, op, message in refs:
                assert var in SECRETS, f"{name}.{key} uses {var}"
                assert op == ":?" and message.strip(), f"{name}.{key}: ${{{var}:?message}}"


def test_no_secret_values_in_the_repository_files() -> None:
    """compose.yaml and .env.example carry no secret values; secrets are empty examples."""
    text = COMPOSE.read_text(encoding="utf-8")
    for var in SECRETS:
        for value in re.findall(rf"^\s*{var}:\s*(.*)$", text, re.M):
            assert value.startswith(f'"${{{var}:?'), f"{var}: {value}"
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    for var in SECRETS:
        assert example[var] == "", f"{var} must be empty in .env.example"


def test_env_example_documents_every_variable() -> None:
    """Each `${VAR}` compose.yaml reads appears, with a comment, in .env.example."""
    used = {m.group(1) for m in _VAR.finditer(COMPOSE.read_text(encoding="utf-8"))}
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            documented[line.split("=", 1)[0]] = i > 0 and lines[i - 1].startswith("#")
    assert used <= set(documented), sorted(used - set(documented))
    assert all(documented.values()), [k for k, v in documented.items() if not v]


def test_ports_published() -> None:
    """Only the console and Prometheus (loopback by default) and Asterisk's SIP and RTP
    are published."""
    services = _services()
    for name in ("postgres", "migrate", "agi1", "agi2"):
        assert "ports" not in services[name], f"{name} must stay on the compose network"
    assert services["console"]["ports"] == ["${IVR_CONSOLE_PUBLISH:-127.0.0.1:8333}:8333"]
    assert services["prometheus"]["ports"] == ["${IVR_PROMETHEUS_PUBLISH:-127.0.0.1:9090}:9090"]
    ports = services["asterisk"]["ports"]
    assert "5060:5060/udp" in ports
    render_asterisk = _render_module()
    rtp = f"{render_asterisk.RTP_START}-{render_asterisk.RTP_END}"
    assert f"{rtp}:{rtp}/udp" in ports
    assert f"EXPOSE 5060/udp {rtp}/udp" in _dockerfile("asterisk.Dockerfile")


def test_commands_are_real_ivr12333_subcommands() -> None:
    """Every command and CMD is `ivr12333 <command>` that the CLI's own parser accepts."""
    python_commands = [(w, argv) for w, argv in _commands() if argv[0] == "ivr12333"]
    assert {w for w, _ in python_commands} >= {
        "service migrate",
        "service agi1",
        "service agi2",
        "service console",
        "app.Dockerfile",
    }
    for where, argv in python_commands:
        args = argv[1:]
        assert args[0] in COMMANDS, f"{where}: {args[0]} is not an ivr12333 command"
        parsed = build_parser(args).parse_args(args)
        assert callable(getattr(parsed, "func", None)), f"{where}: {argv} selects no action"
    wanted = {tuple(argv) for _, argv in python_commands}
    assert ("ivr12333", "agi", "serve", "--host", ALL_INTERFACES) in wanted
    assert ("ivr12333", "console", "serve", "--host", ALL_INTERFACES) in wanted
    assert ("ivr12333", "db", "migrate") in wanted


def test_dockerfile_copy_sources_exist() -> None:
    """COPY sources (not from a stage) exist in the repository and pass the .dockerignore."""
    for dockerfile in DOCKERFILES:
        ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text(encoding="utf-8")
        allowed = [p[1:] for p in ignore.splitlines() if p.startswith("!")]
        for word, rest in _instructions(_dockerfile(dockerfile)):
            if word != "COPY" or "--from=" in rest:
                continue
            *sources, _target = [w for w in rest.split() if not w.startswith("--")]
            for source in sources:
                if source == ".":
                    # The whole context, i.e. what the allow-list lets through: all of it exists.
                    for pattern in allowed:
                        assert (ROOT / pattern).exists(), f"{dockerfile}: !{pattern}: no such file"
                    continue
                assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: no such file"
                assert any(fnmatch.fnmatch(source.rstrip("/"), p) for p in allowed), (
                    f"{dockerfile}: {source} is excluded by the .dockerignore"
                )


def test_both_images_send_the_same_context() -> None:
    """The two .dockerignore allow-lists are the same: the shared build stage copies the
    whole context, so only the same content lets the second image reuse its layers."""
    app, asterisk = (
        (DOCKER / f"{name}.dockerignore").read_text(encoding="utf-8") for name in DOCKERFILES
    )
    assert app == asterisk


def test_compose_build_contexts_and_dockerfiles() -> None:
    """Builds use the repository root as context and Dockerfiles that exist."""
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).is_file(), name


def test_shared_build_stage_is_identical() -> None:
    """The prompt-building stage is the same text in both Dockerfiles (one cached build)."""

    def shared(name: str) -> str:
        text = _dockerfile(name)
        start, end = text.index(SHARED_START), text.index(SHARED_END)
        return text[start:end]

    assert shared("app.Dockerfile") == shared("asterisk.Dockerfile")


def test_images_are_built_as_intended() -> None:
    """Synthesis tools only in the build stage; non-root users; Debian sid Asterisk."""
    app = _dockerfile("app.Dockerfile")
    runtime = app[app.index(SHARED_END) :]
    for tool in ("espeak-ng", "sox", "ffmpeg"):
        assert tool in app[: app.index(SHARED_END)]
        assert tool not in runtime, f"{tool} leaked into the runtime image"
    assert "python:3.11-slim-bookworm" in app
    assert "USER ivr12333" in runtime
    # Runtime dependencies from pyproject.toml in a layer of their own, then the project.
    assert "['project']['dependencies']" in app and "optional-dependencies" not in app
    assert "pip install --no-deps /src" in app and "[test]" not in app
    assert app.index("['project']['dependencies']") < app.index("COPY . ./")
    assert "prompts build" in app
    asterisk = _dockerfile("asterisk.Dockerfile")
    assert "ASTERISK_BASE=debian:sid-slim" in asterisk
    assert "asterisk asterisk-modules" in asterisk
    assert "USER asterisk" in asterisk
    assert "COPY --from=build /build/sounds/zh/ /usr/share/asterisk/sounds/zh/" in asterisk


def test_rendered_asterisk_config_for_the_compose_network(tmp_path: Path) -> None:
    """The container's Asterisk gets agi1 then agi2, the site includes and the RTP range."""
    render_asterisk = _render_module()
    settings = Settings(env="test", office_hours="09:00-12:00,13:30-17:00")
    render_asterisk.write_tree(tmp_path, settings)
    etc = tmp_path / "etc/asterisk-compose"
    extensions = (etc / "extensions.conf").read_text(encoding="utf-8")
    assert "IVR_AGI_SERVERS = agi1:4573&agi2:4573" in extensions
    assert not re.search(r"@[A-Z_]+@", "".join(p.read_text() for p in etc.glob("*.conf")))
    asterisk_conf = (etc / "asterisk.conf").read_text(encoding="utf-8")
    assert "astetcdir => /etc/asterisk-compose" in asterisk_conf
    # The Dockerfile's sed rewrites this line for the image's architecture.
    assert re.search(r"^astmoddir => /usr/lib/[^/]+/asterisk/modules$", asterisk_conf, re.M)
    pjsip = (etc / "pjsip.conf").read_text(encoding="utf-8")
    assert "bind = 127.0.0.1:5070" in pjsip
    assert pjsip.rstrip().endswith("#tryinclude site/pjsip_site.conf")
    assert extensions.rstrip().endswith("#tryinclude site/extensions_site.conf")
    queues = (etc / "queues.conf").read_text(encoding="utf-8")
    assert queues.rstrip().endswith("#tryinclude site/queue_members.conf")
    rtp = (etc / "rtp.conf").read_text(encoding="utf-8")
    assert f"rtpstart = {render_asterisk.RTP_START}" in rtp
    assert f"rtpend = {render_asterisk.RTP_END}" in rtp
    assert "full =>" not in (etc / "logger.conf").read_text(encoding="utf-8")
    assert (etc / "extensions_hours.conf").is_file()
    assert (tmp_path / render_asterisk.MOH_FILE).stat().st_size > 8000
    assert (etc / "site").is_dir()


def test_site_example_matches_the_includes() -> None:
    """The example site folder has the three files the rendered config includes."""
    render_asterisk = _render_module()
    sites = (
        render_asterisk.SITE_PJSIP,
        render_asterisk.SITE_MEMBERS,
        render_asterisk.SITE_EXTENSIONS,
    )
    for rel in sites:
        name = rel.split("/", 1)[1]
        assert (DOCKER / "site.example" / name).is_file(), name
    members = (DOCKER / "site.example/queue_members.conf").read_text(encoding="utf-8")
    assert not re.search(r"^\[", members, re.M), "a [section] would leave the agent queue"


def test_compose_config_with_a_compose_implementation(tmp_path: Path) -> None:
    """`docker-compose config` accepts the file with secrets set and refuses without them."""
    binary = _compose_binary()
    if binary is None:
        pytest.skip(
            "no compose implementation here (apt-get install docker-compose, or the docker "
            "CLI's compose plugin); the YAML checks above still ran"
        )
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in TEST_SECRETS.items()), encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    run = [*binary, "--env-file", str(env_file), "-f", str(COMPOSE), "config"]
    ok = subprocess.run(run, capture_output=True, text=True, env=base, cwd=ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
    config = yaml.safe_load(ok.stdout)
    assert set(config["services"]) == SERVICES
    url = config["services"]["agi1"]["environment"]["IVR_DATABASE_URL"]
    assert url == (
        f"postgresql+asyncpg://ivr12333:{TEST_SECRETS['POSTGRES_PASSWORD']}@postgres:5432/ivr12333"
    )
    for secret in SECRETS:
        env_file.write_text(
            "".join(f"{k}={v}\n" for k, v in TEST_SECRETS.items() if k != secret),
            encoding="utf-8",
        )
        refused = subprocess.run(
            run, capture_output=True, text=True, env=base, cwd=ROOT, check=False
        )
        assert refused.returncode != 0, f"compose started without {secret}"
        assert secret in refused.stderr + refused.stdout


def test_render_script_runs_as_a_program(tmp_path: Path) -> None:
    """`python docker/render_asterisk.py OUT`, as the image build runs it, writes the tree."""
    env = {**os.environ, "IVR_ENV": "dev", "IVR_OFFICE_HOURS": "08:30-17:30"}
    result = subprocess.run(
        [sys.executable, str(DOCKER / "render_asterisk.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    hours = (tmp_path / "etc/asterisk-compose/extensions_hours.conf").read_text()
    assert ">= 10830 & ${hm} < 11730" in hours


def test_prometheus_scrapes_every_metrics_listener() -> None:
    """docker/prometheus.yml scrapes agi1 and agi2 at the port their settings give their
    metrics listener (reachable on the compose network), and the console."""
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    metrics_port = Settings(env="test").metrics_port_for(4573)
    assert targets["ivr12333-agi"] == [f"agi1:{metrics_port}", f"agi2:{metrics_port}"]
    assert targets["ivr12333-console"] == ["console:8333"]
    assert _compose()["x-app-env"]["IVR_AGI_METRICS_HOST"] == ALL_INTERFACES
    mounted = _services()["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted
    # Opt-in: a plain `up` starts only what the hotline needs (and what can be pulled).
    assert _services()["prometheus"]["profiles"] == ["monitoring"]
    assert all("profiles" not in spec for name, spec in _services().items() if name != "prometheus")


def test_grafana_dashboard_uses_only_metrics_that_exist() -> None:
    """Every metric the dashboard queries is one backend.metrics exposes (histograms by
    their _bucket and _count series), and every panel has a query."""
    import json

    from prometheus_client import generate_latest

    from backend.metrics import REGISTRY

    exposed = set(re.findall(r"^# TYPE (\w+) ", generate_latest(REGISTRY).decode(), re.M))
    series = set()
    for name in exposed:
        series |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    dashboard = json.loads((DOCKER / "grafana-dashboard.json").read_text(encoding="utf-8"))
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\bivr12333_\w+", target["expr"]))
    assert used, "the dashboard queries nothing"
    assert used <= series, sorted(used - series)
