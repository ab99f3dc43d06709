"""`make deploy-test`: the production images built and run for real on this machine.

    python -m tests.deploy.stack [--keep-images] [--no-cache]

1. Host tools (podman, runc, catatonit, debootstrap, docker-compose, SIPp) when missing.
2. Base images made locally when missing (docker/base-image.sh: debootstrap, podman import):
   a Debian 12 with Python 3.11 standing in for python:3.11-slim-bookworm, and Debian sid
   for Asterisk 22.
3. The app and Asterisk images built with podman from docker/app.Dockerfile and
   docker/asterisk.Dockerfile (the base images as build arguments), and a PostgreSQL 15
   stand-in for postgres:15 (docker/deploy-test/postgres.Dockerfile).
4. The stack brought up from docker/compose.yaml with docker-compose against podman's
   Docker API, plus docker/deploy-test/compose.override.yaml (host network, 127.0.0.1,
   free ports, test secrets made for this run); every health check waited for.
5. Real SIPp calls into the containerised Asterisk: a PIN change, then a loss report with
   the new PIN; an initial-PIN holder reaching the agent queue (a test agent phone answers).
   The containerised PostgreSQL is checked after each.
6. Restart: the app containers stopped and started while the stack is up; calls before and
   after succeed and the database keeps every change. Then `down` and `up` again: the data
   volume keeps it all.
7. Teardown: `down -v`, the API service stopped; no container, volume or process is left.

Each stage's time and the images' sizes are printed at the end; the log of the run (compose
output, the containers' logs) is kept in .local/deploy-test/<time>/. Needs root (podman's
vfs storage, debootstrap). No Docker engine and no image registry are needed: only the
Debian mirror and PyPI, reached the way this machine reaches them (read-only mounts during
the builds, never part of an image).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
PODMAN = DOCKER / "podman.sh"
OVERRIDE = DOCKER / "deploy-test" / "compose.override.yaml"
PROJECT = "ivr12333deploytest"

PYTHON_BASE = "localhost/debian-python:bookworm"
ASTERISK_BASE = "localhost/debian:sid-slim"
POSTGRES_IMAGE = "localhost/ivr12333-test-postgres:15"
APP_IMAGE = "localhost/ivr12333-app:latest"
ASTERISK_IMAGE = "localhost/ivr12333-asterisk:latest"
# The loopback transport of the container's Asterisk (docker/render_asterisk.py).
SIP_PORT = 5070
SERVICES = ("postgres", "migrate", "agi1", "agi2", "console", "asterisk")
LONG_RUNNING = ("postgres", "agi1", "agi2", "console", "asterisk")
APP_SERVICES = ("agi1", "agi2", "console")
# Office hours for the calls: a Friday morning, for the dialplan and the FastAGI servers.
OFFICE_MOMENT = dt.datetime.fromisoformat("2026-11-27T10:00:00+08:00")
HOST_TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "docker-compose": "docker-compose",
    "sipp": "sip-tester",
}


class DeployTestFailed(AssertionError):
    """A step of the deploy test did not give what it must."""


@dataclass
class Report:
    stages: list[tuple[str, float]] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            self.stages.append((name, time.monotonic() - started))

    def check(self, ok: bool, what: str, detail: object = "") -> None:
        if not ok:
            raise DeployTestFailed(f"{what}: {detail}")
        self.checks.append(what)
        print(f"   ok: {what}", flush=True)

    def print(self) -> None:
        print("\nstages:")
        for name, seconds in self.stages:
            print(f"  {name:<58} {seconds:7.1f} s")
        print(f"  {'total':<58} {sum(s for _, s in self.stages):7.1f} s")
        if self.images:
            print("images:")
            for name, size in self.images.items():
                print(f"  {name:<58} {size / 1e6:7.0f} MB")
        if self.calls:
            print("calls:")
            for line in self.calls:
                print(f"  {line}")
        print(f"checks passed: {len(self.checks)}")


def run(
    command: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    input_text: str | None = None,
    timeout: float = 3600,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in command],
        env=env,
        capture_output=capture,
        text=True,
        input=input_text,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        tail = ((proc.stdout or "") + (proc.stderr or ""))[-3000:]
        raise DeployTestFailed(f"{' '.join(map(str, command))} exited {proc.returncode}\n{tail}")
    return proc


def podman(*args: str, check: bool = True, timeout: float = 600) -> str:
    return run([PODMAN, *args], check=check, timeout=timeout).stdout


# --- host and images ---------------------------------------------------------------------


def ensure_host_tools() -> None:
    missing = [pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None]
    if not Path("/usr/libexec/podman/catatonit").exists():
        missing.append("catatonit")  # `init: true` in compose.yaml
    if missing:
        print(f"   installing {' '.join(missing)}", flush=True)
        run(["apt-get", "update", "-qq"])
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def registry_mounts() -> list[str]:
    """How this machine reaches the Debian mirror and PyPI, read-only for a build's steps.

    Mounted at build time only (`podman build -v`), never copied into a layer.
    """
    mounts: list[str] = []
    ca = os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    if Path(ca).is_file():
        mounts += ["-v", f"{Path(ca).resolve()}:/etc/ssl/certs/ca-certificates.crt:ro"]
    if Path("/etc/pip.conf").is_file():
        mounts += ["-v", "/etc/pip.conf:/etc/pip.conf:ro"]
    # apt's Acquire settings (proxies, a snapshot mirror's date checks); the image's own
    # sources stay (a sid image must not get this machine's bookworm sources).
    for conf in sorted(Path("/etc/apt/apt.conf.d").glob("*")):
        if conf.is_file() and "Acquire" in conf.read_text(errors="replace"):
            mounts += ["-v", f"{conf}:{conf}:ro"]
    return mounts


def build(
    image: str,
    dockerfile: Path,
    context: Path,
    build_args: dict[str, str],
    log: Path,
    *,
    no_cache: bool = False,
) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    command: list[str | Path] = [PODMAN, "build", "--layers", "-f", dockerfile, "-t", image]
    if ignore.is_file():
        command += ["--ignorefile", ignore]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    if no_cache:
        command.append("--no-cache")
    command += [*registry_mounts(), context]
    with log.open("a", encoding="utf-8") as out:
        out.write("$ " + " ".join(map(str, command)) + "\n")
        out.flush()
        proc = subprocess.run([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise DeployTestFailed(f"building {image} failed (log {log}):\n{tail}")


def image_size(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).strip())


# --- the stack -------------------------------------------------------------------------


@dataclass
class Stack:
    work: Path
    # compose.yaml with the override merged in (see `resolve_compose`).
    resolved: Path
    values: dict[str, str]
    socket: Path
    service: subprocess.Popen[bytes] | None = None
    # The compose project and its services (tests/deploy/cluster.py runs another one).
    project: str = PROJECT
    services: Sequence[str] = SERVICES
    long_running: Sequence[str] = LONG_RUNNING
    _ticking: threading.Event = field(default_factory=threading.Event)

    @property
    def compose_env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        command = ["docker-compose", "--project-name", self.project, "-f", str(self.resolved)]
        command += args
        started = time.monotonic()
        proc = run(command, env=self.compose_env, check=False, timeout=timeout)
        with (self.work / "compose.log").open("a", encoding="utf-8") as log:
            log.write(f"$ docker-compose {' '.join(args)}  ({time.monotonic() - started:.1f} s)\n")
            log.write(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise DeployTestFailed(
                f"docker-compose {' '.join(args)} exited {proc.returncode}:\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}"
            )
        return proc.stdout

    def container(self, service: str) -> str:
        """The name of the service's container (compose 1.29: PROJECT_service_1)."""
        return f"{self.project}_{service}_1"

    def state(self, service: str) -> dict[str, Any]:
        out = podman("inspect", "--format", "{{json .State}}", self.container(service), check=False)
        return json.loads(out) if out.strip() else {}

    def health(self, service: str) -> str:
        state = self.state(service)
        health = state.get("Health") or state.get("Healthcheck") or {}
        return str(health.get("Status", "")) if state.get("Running") else "not running"

    # podman without systemd runs no health checks by itself (it schedules them with
    # systemd timers): this thread runs them as Docker's engine would, every few seconds.
    def start_health_ticker(self, every: float = 3.0) -> None:
        def tick() -> None:
            while not self._ticking.wait(every):
                for service in self.long_running:
                    name = self.container(service)
                    run([PODMAN, "healthcheck", "run", name], check=False, timeout=60)

        self._ticking.clear()
        threading.Thread(target=tick, name="health-ticker", daemon=True).start()

    def stop_health_ticker(self) -> None:
        self._ticking.set()

    def wait_healthy(self, services: Sequence[str] = (), limit: float = 300) -> None:
        services = services or self.long_running
        deadline = time.monotonic() + limit
        status: dict[str, str] = {}
        while time.monotonic() < deadline:
            status = {s: self.health(s) for s in services}
            if all(v == "healthy" for v in status.values()):
                return
            time.sleep(1)
        raise DeployTestFailed(f"not healthy after {limit:.0f} s: {status}")

    def migrate_exit(self) -> int | None:
        state = self.state("migrate")
        if state.get("Running") or "ExitCode" not in state:
            return None
        return int(state["ExitCode"])

    def exec(self, service: str, *command: str, input_text: str | None = None) -> str:
        interactive = ["-i"] if input_text is not None else []
        args: list[str | Path] = [PODMAN, "exec", *interactive, self.container(service)]
        return run([*args, *command], input_text=input_text).stdout

    def sql(self, query: str, **params: str) -> list[list[str]]:
        """Rows of `query` run by psql in the postgres container; `:'name'` is a parameter
        (psql quotes it), sent with the query on standard input."""
        lines = []
        for name, value in params.items():
            if not re.fullmatch(r"[A-Za-z0-9.-]+", value):
                raise DeployTestFailed(f"parameter {name}: letters, digits, dots and dashes only")
            lines.append(f"\\set {name} {value}")
        out = self.exec(
            "postgres",
            *("psql", "-U", "ivr12333", "-d", "ivr12333", "-AtX", "-F", "\t"),
            *("-v", "ON_ERROR_STOP=1", "-f", "-"),
            input_text="\n".join([*lines, query.rstrip(";") + ";", ""]),
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def asterisk_cli(self, command: str) -> str:
        return self.exec("asterisk", "asterisk", "-rx", command)

    def set_office_clock(self) -> None:
        epoch = int(OFFICE_MOMENT.timestamp())
        out = self.asterisk_cli(f"dialplan set global IVR_CLOCK_EPOCH {epoch}")
        if "set to" not in out:
            raise DeployTestFailed(f"Asterisk refused the clock: {out}")

    def save_logs(self, label: str) -> None:
        folder = self.work / f"logs-{label}"
        folder.mkdir(exist_ok=True)
        for service in self.services:
            proc = run([PODMAN, "logs", self.container(service)], check=False)
            (folder / f"{service}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")


def free_port() -> int:
    from tests.sip_phones import free_tcp_port

    return free_tcp_port()


def distinct_free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def write_env(work: Path, site: Path) -> dict[str, str]:
    """The stack's environment: secrets made for this run only, free ports, the site."""
    pg, agi1, agi2, console = distinct_free_ports(4)
    values = {
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "IVR_PIN_PEPPER": secrets.token_hex(32),
        "IVR_TEST_PG_PORT": str(pg),
        "IVR_TEST_AGI1_PORT": str(agi1),
        "IVR_TEST_AGI2_PORT": str(agi2),
        "IVR_TEST_CONSOLE_PORT": str(console),
        "IVR_TEST_NOW": OFFICE_MOMENT.isoformat(),
        "IVR_ASTERISK_SITE_DIR": str(site),
        "IVR_IMAGE_TAG": "latest",
    }
    env_file = work / "test.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return values


def write_site(site: Path, agi_ports: Sequence[str], agent_port: int) -> None:
    """The Asterisk site folder: the two FastAGI servers on loopback and one test agent."""
    from dialplan.render import Agent, agents_block, members_block

    agents = [Agent("agent1", port=agent_port)]
    site.mkdir(parents=True, exist_ok=True)
    servers = "&".join(f"127.0.0.1:{p}" for p in agi_ports)
    (site / "extensions_site.conf").write_text(
        f"[globals](+)\nIVR_AGI_SERVERS = {servers}\n", encoding="utf-8"
    )
    (site / "pjsip_site.conf").write_text(agents_block(agents) + "\n", encoding="utf-8")
    (site / "queue_members.conf").write_text(members_block(agents) + "\n", encoding="utf-8")
    for path in [site, *site.iterdir()]:
        # uid 333 is Asterisk in its image; the folder is mounted read-only.
        os.chown(path, 333, 333)


def resolve_compose(
    work: Path,
    env_file: Path,
    files: Sequence[Path] = (DOCKER / "compose.yaml", OVERRIDE),
    project: str = PROJECT,
) -> Path:
    """compose.yaml with the test's override merged in by `docker-compose config`, minus
    the published ports of services on the host's network.

    Compose merges lists, so an override cannot drop compose.yaml's `ports:`, and docker-py
    refuses port bindings with `network_mode: host` (where they mean nothing: the services
    listen on the host's loopback directly). The file holds this run's secrets: mode 600,
    removed at teardown.
    """
    import yaml

    out = run(
        [
            "docker-compose",
            "--project-name",
            project,
            "--env-file",
            env_file,
            *(arg for path in files for arg in ("-f", path)),
            "config",
        ]
    ).stdout
    config = yaml.safe_load(out)
    for service in config["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    resolved = work / "compose.resolved.yaml"
    resolved.touch(mode=0o600)
    resolved.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return resolved


def start_api_service(work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    sock = work / "podman.sock"
    log = (work / "podman-service.log").open("wb")
    proc = subprocess.Popen(
        [str(PODMAN), "system", "service", "--time=0", f"unix://{sock}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DeployTestFailed(f"podman system service did not start (see {log.name})")
        time.sleep(0.2)
    return proc, sock


def stop_api_service(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- calls -----------------------------------------------------------------------------


@dataclass
class Card:
    card_number: str
    id_number: str
    pin: str = "123456"

    @property
    def digits(self) -> str:
        return "".join(ch for ch in self.card_number if ch.isdigit())


def issue_card(stack: Stack) -> Card:
    """A card issued through the console container's CLI (initial PIN)."""
    from tests.conftest import make_card_number, make_id_number

    card = Card(make_card_number(), make_id_number())
    out = stack.exec(
        "console",
        "ivr12333",
        "cards",
        "add",
        "--card-number",
        card.card_number,
        "--id-number",
        card.id_number,
        "--name",
        "张三",
        "--json",
    )
    issued = json.loads(out)
    if issued.get("card_number") != card.card_number or not issued.get("pin_is_initial"):
        raise DeployTestFailed(f"cards add gave {issued}")
    return card


def card_row(stack: Stack, card: Card) -> dict[str, str]:
    rows = stack.sql(
        "SELECT pin_is_initial, pin_changed_at IS NOT NULL, status, failed_attempts, "
        "locked FROM cards WHERE card_number = :'card'",
        card=card.card_number,
    )
    if len(rows) != 1:
        raise DeployTestFailed(f"card {card.card_number[-4:]}: {len(rows)} rows")
    keys = ("pin_is_initial", "pin_changed", "status", "failed_attempts", "locked")
    return dict(zip(keys, rows[0], strict=True))


def loss_reports(stack: Stack, card: Card) -> list[list[str]]:
    return stack.sql(
        "SELECT r.channel, r.status, r.reference FROM loss_reports r JOIN cards c "
        "ON c.id = r.card_id WHERE c.card_number = :'card' ORDER BY r.id",
        card=card.card_number,
    )


def call(report: Report, label: str, number: str, keys: str, limit: float = 150) -> Any:
    from asterisk_local.caller import place_call

    result = place_call(number, keys, sip_port=SIP_PORT, timeout=limit)
    report.calls.append(f"{label}: {result.summary()}")
    print(f"   {label}: {result.summary()}", flush=True)
    if not result.answered:
        raise DeployTestFailed(f"{label}: not answered: {result.sipp_output[-1500:]}")
    return result


def pin_change_then_loss(stack: Stack, report: Report, label: str) -> Card:
    """A new card: the initial PIN changed by phone, then the card reported lost with the
    new PIN; the database checked after each call."""
    from tests.conftest import IssuedCard, make_pin
    from tests.e2e.test_calls import change_pin_keys, loss_keys

    card = issue_card(stack)
    new = make_pin()
    issued = IssuedCard(card.card_number, card.id_number, "张三", card.pin)
    call(report, f"{label} PIN change", "12333", change_pin_keys(issued, "123456", new))
    row = card_row(stack, card)
    report.check(
        row["pin_is_initial"] == "f" and row["pin_changed"] == "t",
        f"{label}: PIN changed in PostgreSQL (pin_is_initial false, pin_changed_at set)",
        row,
    )
    card.pin = new
    call(report, f"{label} loss report, new PIN", "12333", loss_keys(issued, new))
    found = loss_reports(stack, card)
    report.check(
        [(r[0], r[1]) for r in found] == [("ivr", "active")] and len(found[0][2]) == 12,
        f"{label}: one active IVR loss report with a 12-digit reference",
        found,
    )
    return card


def initial_pin_to_queue(stack: Stack, report: Report, agent_port: int) -> Card:
    """An initial-PIN holder reporting a loss is refused at once and keys 0 for the agent
    queue: the test agent phone rings with the call id and the reason; a handoff row is
    stored, no loss report."""
    from tests.e2e.test_calls import entry
    from tests.sip_phones import AgentPhone

    card = issue_card(stack)
    keys = " ".join(
        [
            "wait:2",
            entry(card.digits),
            entry("123456"),
            entry(card.id_number),
            # Refused at once (2.8 s, not interruptible), then the choices: 0 for an agent,
            # keyed again in case a loaded machine let the first fall within the refusal.
            "wait:5 0",
            "wait:6 0",
            "wait:30",
        ]
    )
    with AgentPhone(agent_port, talk_s=1.5, timeout=120) as phone:
        call(report, "initial PIN to the agent queue", "123332", keys)
        agent = phone.result(30)
    report.calls.append(
        f"agent phone: answered={agent.answered}, reason={agent.invite_headers.get('x-ivr-reason')}"
    )
    report.check(agent.answered, "the agent's phone answered the queue's call", agent)
    report.check(
        agent.invite_headers.get("x-ivr-reason") == "initial-pin-loss-report",
        "the agent's INVITE carries the reason initial-pin-loss-report",
        agent.invite_headers,
    )
    call_id = agent.invite_headers.get("x-ivr-call-id", "")
    report.check(
        call_id.replace(".", "").isalnum(), "the agent's INVITE carries a call id", call_id
    )
    rows = stack.sql("SELECT reason FROM handoffs WHERE call_id = :'call_id'", call_id=call_id)
    report.check(
        rows == [["initial-pin-loss-report"]],
        "the handoff is stored in PostgreSQL under the call id",
        rows,
    )
    report.check(loss_reports(stack, card) == [], "no loss report for the initial-PIN card")
    return card


def database_snapshot(stack: Stack) -> list[list[str]]:
    return stack.sql(
        "SELECT c.card_number, c.pin_is_initial, c.pin_hash, "
        "coalesce(string_agg(r.reference || ':' || r.status, ',' ORDER BY r.id), '') "
        "FROM cards c LEFT JOIN loss_reports r ON r.card_id = c.id "
        "GROUP BY c.id ORDER BY c.id"
    ) + stack.sql("SELECT call_id, reason FROM handoffs ORDER BY call_id")


# --- the whole run -----------------------------------------------------------------------


def images(report: Report, work: Path, no_cache: bool, reuse: bool) -> None:
    if reuse and all(
        run([PODMAN, "image", "exists", image], check=False).returncode == 0
        for image in (POSTGRES_IMAGE, APP_IMAGE, ASTERISK_IMAGE)
    ):
        print("   images exist and --reuse-images: not built", flush=True)
        for image in (POSTGRES_IMAGE, APP_IMAGE, ASTERISK_IMAGE, PYTHON_BASE, ASTERISK_BASE):
            report.images[image] = image_size(image)
        return
    with report.stage("base images (debootstrap + import, when missing)"):
        run(
            [
                DOCKER / "base-image.sh",
                "--include",
                "python3,python3-venv,python-is-python3",
                PYTHON_BASE,
            ]
        )
        run([DOCKER / "base-image.sh", "--suite", "sid", ASTERISK_BASE])
    log = work / "build.log"
    with report.stage(f"build {POSTGRES_IMAGE} (stand-in)"):
        build(
            POSTGRES_IMAGE,
            DOCKER / "deploy-test" / "postgres.Dockerfile",
            DOCKER / "deploy-test",
            {"BASE_IMAGE": PYTHON_BASE},
            log,
            no_cache=no_cache,
        )
    with report.stage(f"build {APP_IMAGE}"):
        build(
            APP_IMAGE,
            DOCKER / "app.Dockerfile",
            ROOT,
            {"PYTHON_IMAGE": PYTHON_BASE},
            log,
            no_cache=no_cache,
        )
    with report.stage(f"build {ASTERISK_IMAGE}"):
        build(
            ASTERISK_IMAGE,
            DOCKER / "asterisk.Dockerfile",
            ROOT,
            {"PYTHON_IMAGE": PYTHON_BASE, "ASTERISK_BASE": ASTERISK_BASE},
            log,
            no_cache=no_cache,
        )
    for image in (POSTGRES_IMAGE, APP_IMAGE, ASTERISK_IMAGE, PYTHON_BASE, ASTERISK_BASE):
        report.images[image] = image_size(image)


def changed_context(work: Path) -> Path:
    """A copy of the build context as the .dockerignore lets it through, with one line of
    code changed: what an operator's rebuild after an edit sends to the builder."""
    context = work / "changed-context"
    patterns = (DOCKER / "app.Dockerfile.dockerignore").read_text().splitlines()
    allowed = [p[1:] for p in patterns if p.startswith("!")]
    for name in allowed:
        source = ROOT / name
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    edited = context / "ivr" / "__init__.py"
    edited.write_text(edited.read_text() + "# a code change, for the rebuild check\n")
    return context


def rebuild(report: Report, work: Path) -> None:
    """Both images again after a one-line code change: the base, system-package and
    Python-dependency layers come from the cache, only the source steps run."""
    context = changed_context(work)
    log = work / "rebuild.log"
    probe = {APP_IMAGE: "localhost/ivr12333-app:rebuild-check"}
    probe[ASTERISK_IMAGE] = "localhost/ivr12333-asterisk:rebuild-check"
    try:
        with report.stage(f"rebuild {APP_IMAGE} after a code change"):
            build(
                probe[APP_IMAGE],
                DOCKER / "app.Dockerfile",
                context,
                {"PYTHON_IMAGE": PYTHON_BASE},
                log,
            )
        with report.stage(f"rebuild {ASTERISK_IMAGE} after a code change"):
            build(
                probe[ASTERISK_IMAGE],
                DOCKER / "asterisk.Dockerfile",
                context,
                {"PYTHON_IMAGE": PYTHON_BASE, "ASTERISK_BASE": ASTERISK_BASE},
                log,
            )
        text = log.read_text(encoding="utf-8", errors="replace")
        # podman prints "--> Using cache <id>" for each step it did not run again.
        report.check(
            text.count("Using cache") >= 4,
            "rebuild: the system-package and dependency layers came from the cache",
            f"{text.count('Using cache')} cached steps (log {log})",
        )
    finally:
        run([PODMAN, "rmi", "--force", *probe.values()], check=False)
        shutil.rmtree(context, ignore_errors=True)


def up(stack: Stack, report: Report, label: str) -> None:
    with report.stage(f"{label}: compose up -d (health checks included)"):
        try:
            stack.compose("up", "-d", "--no-build", timeout=900)
        except DeployTestFailed as exc:
            # podman 4.3's Docker API can fail to inspect a container that has just exited
            # (migrate): "read /proc/PID/cgroup: no such process". `up` again carries on.
            if "no such process" not in str(exc):
                raise
            print("   podman lost a container's exit; compose up again", flush=True)
            stack.compose("up", "-d", "--no-build", timeout=900)
        stack.wait_healthy()
    report.check(
        stack.migrate_exit() == 0, f"{label}: migrate ran and exited 0", stack.state("migrate")
    )
    stack.set_office_clock()


def check_running_stack(stack: Stack, report: Report) -> None:
    """What running the stack must show besides calls: users, migration order, logs."""
    for service in LONG_RUNNING:
        uid = stack.exec(service, "id", "-u").strip()
        report.check(uid not in ("", "0"), f"{service} runs as a non-root user (uid {uid})", uid)
    finished = stack.state("migrate").get("FinishedAt", "")
    for service in APP_SERVICES:
        started = stack.state(service).get("StartedAt", "")
        report.check(
            bool(finished) and finished < started,
            f"{service} started after the migration finished",
            (finished, started),
        )
    # (migrate is a one-shot command: its "database schema is up to date" is its answer.)
    for service in APP_SERVICES:
        logs = run([PODMAN, "logs", stack.container(service)])
        # The servers log to stdout, one JSON object a line (their ready lines too).
        lines = logs.stdout.splitlines()
        bad = [line for line in lines if line.strip() and not _is_json_object(line)]
        report.check(
            bool(lines) and not bad, f"{service}: logs on stdout, every line a JSON object", bad[:5]
        )
        report.check(not logs.stderr.strip(), f"{service}: nothing on stderr", logs.stderr[-500:])


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def restart_policy(stack: Stack, report: Report, service: str) -> None:
    """The service's server process killed (SIGKILL) inside its container: the restart
    policy brings the container back and it is healthy again."""
    before = int(podman("inspect", "--format", "{{.RestartCount}}", stack.container(service)))
    init_pid = int(podman("inspect", "--format", "{{.State.Pid}}", stack.container(service)))
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    report.check(len(children) == 1, f"{service}: one server process under its init", children)
    os.kill(int(children[0]), signal.SIGKILL)
    deadline = time.monotonic() + 120
    count = before
    while time.monotonic() < deadline:
        count = int(podman("inspect", "--format", "{{.RestartCount}}", stack.container(service)))
        if count > before and stack.health(service) == "healthy":
            break
        time.sleep(1)
    report.check(
        count > before and stack.health(service) == "healthy",
        f"{service}: killed server process, container restarted by its policy and healthy",
        (before, count, stack.health(service)),
    )


def leftovers(stack: Stack) -> list[str]:
    found = []
    label = f"label=com.docker.compose.project={stack.project}"
    containers = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").split()
    found += [f"container {c}" for c in containers]
    volumes = podman("volume", "ls", "--format", "{{.Name}}").split()
    volumes = [v for v in volumes if stack.project in v]
    found += [f"volume {v}" for v in volumes]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if stack.project in cmdline or str(stack.socket) in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="build without cached layers")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack up on failure (for a look)"
    )
    parser.add_argument(
        "--reuse-images",
        action="store_true",
        help="skip the builds when the three images exist (to repeat the run's later stages)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: debootstrap and podman's vfs storage need it", file=sys.stderr)
        return 2
    work = ROOT / ".local" / "deploy-test" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    report = Report()
    stack: Stack | None = None
    ok = False
    try:
        with report.stage("host tools (podman, runc, catatonit, docker-compose, sipp)"):
            ensure_host_tools()
            podman("info")
        images(report, work, args.no_cache, args.reuse_images)
        if not args.reuse_images:
            rebuild(report, work)

        with report.stage("podman API service, env file, site folder"):
            service, sock = start_api_service(work)
            site = work / "site"
            values = write_env(work, site)
            from tests.sip_phones import free_udp_port

            agent_port = free_udp_port()
            write_site(
                site, (values["IVR_TEST_AGI1_PORT"], values["IVR_TEST_AGI2_PORT"]), agent_port
            )
            resolved = resolve_compose(work, work / "test.env")
            stack = Stack(work, resolved, values, sock, service)
            stack.start_health_ticker()
        up(stack, report, "first start")
        check_running_stack(stack, report)

        with report.stage("calls: PIN change, loss report, initial PIN to the queue"):
            first = pin_change_then_loss(stack, report, "card 1")
            initial_pin_to_queue(stack, report, agent_port)
        before = database_snapshot(stack)

        with report.stage("restart: stop and start agi1, agi2, console"):
            started = {s: stack.state(s).get("StartedAt") for s in APP_SERVICES}
            stack.compose("stop", *APP_SERVICES)
            stopped = {s: stack.state(s).get("Running") for s in APP_SERVICES}
            report.check(not any(stopped.values()), "app containers stopped", stopped)
            stack.compose("start", *APP_SERVICES)
            stack.wait_healthy()
            again = {s: stack.state(s).get("StartedAt") for s in APP_SERVICES}
            report.check(
                all(again[s] != started[s] for s in APP_SERVICES),
                "app containers started anew",
                again,
            )
        report.check(database_snapshot(stack) == before, "restart: the database kept every change")
        with report.stage("calls after the restart"):
            pin_change_then_loss(stack, report, "card 3 (after restart)")
        with report.stage("restart policy: agi2's server killed"):
            restart_policy(stack, report, "agi2")
        before = database_snapshot(stack)

        with report.stage("down (volumes kept), then up"):
            stack.compose("down", timeout=300)
            gone = podman(
                "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q"
            ).split()
            report.check(not gone, "down removed every container", gone)
        up(stack, report, "second start")
        report.check(
            database_snapshot(stack) == before, "down/up: the data volume kept every change"
        )
        with report.stage("calls after down/up"):
            rows = loss_reports(stack, first)
            report.check(len(rows) == 1, "card 1's report is still there", rows)
            pin_change_then_loss(stack, report, "card 4 (after down/up)")
        ok = True
    except DeployTestFailed as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
    finally:
        if stack is not None:
            stack.save_logs("end")
            if ok or not args.keep:
                with report.stage("teardown: down -v, API service stopped"):
                    stack.stop_health_ticker()
                    stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
                    if stack.service is not None:
                        stop_api_service(stack.service)
                    stack.resolved.unlink(missing_ok=True)
                    (stack.work / "test.env").unlink(missing_ok=True)
                left = leftovers(stack)
                if left:
                    print(f"\nleft behind: {left}", file=sys.stderr)
                    ok = False
                else:
                    report.checks.append("nothing left: no container, volume or process")
        report.print()
        print(f"log: {work}")
    print("deploy-test: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
