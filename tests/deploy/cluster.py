"""`make cluster-test`: the cluster deployment (docker/compose.cluster.yaml) run for real on
this machine, under a steady stream of real calls, through three faults.

    python -m tests.deploy.cluster [--rebuild] [--no-cache] [--keep]

1. Images: the app and Asterisk images of `make deploy-test` (tests/deploy/stack.py builds
   them when missing), the database image (docker/db.Dockerfile: PostgreSQL 15, Patroni,
   etcd) and the Kamailio image (docker/kamailio.Dockerfile), when missing.
2. The cluster up with docker-compose on podman's Docker API, with
   docker/deploy-test/compose.cluster-override.yaml: host network, everything on
   127.0.0.1 at free ports, secrets made for this run. etcd, two Patroni nodes, the
   database made and migrated once, two FastAGI servers, the console, two Asterisk nodes
   (each with both FastAGI servers), Kamailio over both nodes.
3. The agent queue on each node: initial-PIN holders report a loss through Kamailio until
   the agent phone of each node has answered one.
4. A steady stream of SIPp callers through Kamailio, each on a seeded card of its own,
   changing its PIN or reporting it lost, while:
   a. one Asterisk node's container is killed (then started again);
   b. one FastAGI server's container is killed (then started again);
   c. `patronictl switchover`, then the new primary's container is killed.
   What each caller heard is read off the wire: the RTP Asterisk sent to the caller's port,
   matched frame by frame against the image's prompt files (tests/faults/
   test_asterisk_faults.py's Wire and Prompts). A change is "heard as done" when the
   caller heard its confirmation prompt.
5. Checked in PostgreSQL: nothing half-written, and every change heard as done is there
   (as many as were heard).
6. Teardown: `down -v`, the API service stopped; no container, volume or process is left.

Figures per fault and stage times are printed and written to bench/results/cluster-test.json.
Needs root (podman's vfs storage, reading the loopback interface).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy import stack
from tests.deploy.stack import DOCKER, PODMAN, ROOT, DeployTestFailed, Report, podman, run

PROJECT = "ivr12333clustertest"
COMPOSE = DOCKER / "compose.cluster.yaml"
OVERRIDE = DOCKER / "deploy-test" / "compose.cluster-override.yaml"
DB_IMAGE = "localhost/ivr12333-db:latest"
KAMAILIO_IMAGE = "localhost/ivr12333-kamailio:latest"
SERVICES = (
    *("etcd", "pg1", "pg2", "dbinit", "migrate", "agi1", "agi2", "console"),
    *("asterisk1", "asterisk2", "kamailio"),
)
# The services with a health check (Kamailio's image has no tool to ask it with; the
# queue calls through it show it works).
LONG_RUNNING = ("etcd", "pg1", "pg2", "agi1", "agi2", "console", "asterisk1", "asterisk2")
NODES = ("asterisk1", "asterisk2")
PG_NODES = ("pg1", "pg2")
# Whose CPU the load figures count, while every part is up (before the first fault).
LOADED = ("kamailio", "asterisk1", "asterisk2", "agi1", "agi2", "pg1", "pg2")
RESULTS = ROOT / "bench" / "results" / "cluster-test.json"
PROMPTS_IN_IMAGE = "/usr/share/asterisk/sounds/zh/ivr12333"
# One caller every CALL_GAP_S seconds (a call lasts 41 to 49 s: about 13 at once); modest,
# since this machine's two cores are shared.
CALL_GAP_S = 3.0
CALL_LIMIT_S = 150.0
# The first fault comes once calls placed in the first seconds have ended (the calls
# before the faults) and the calls at once are at their steady number (about 13); the
# load figures are taken from LOAD_FROM_S to then.
WARM_UP_S = 60.0
LOAD_FROM_S = 20.0
# A fault's new calls: those placed this long after it. The next fault waits until they
# have ended (the longest call, 49 s when answered at once).
OBSERVE_S = 25.0
CALL_MAX_S = 50.0
# Calls placed this long after a fault began are past its reach and must be served.
SETTLE_S = {"asterisk": 6.0, "agi": 1.0, "switchover": 6.0, "primary": 16.0}


@dataclass
class Call:
    kind: str  # "change" or "loss"
    card: Any  # tests.conftest.IssuedCard
    new_pin: str
    media_port: int
    at: float  # when it was placed (epoch seconds, the wire's clock)
    result: Any = None  # asterisk_local.caller.CallResult
    heard: list[str] = field(default_factory=list)

    @property
    def ended_at(self) -> float:
        return self.at + (self.result.wall_s if self.result is not None else CALL_LIMIT_S)

    @property
    def answered_at(self) -> float | None:
        r = self.result
        return None if r is None or r.answer_after_s is None else self.at + r.answer_after_s

    @property
    def done(self) -> bool:
        """The caller heard the confirmation of their change."""
        from tests.faults.callers import SERVED

        return SERVED[self.kind] in self.heard

    @property
    def apologies(self) -> int:
        from tests.faults.callers import APOLOGIES

        return sum(1 for prompt in self.heard if prompt in APOLOGIES)

    def why_not(self) -> str:
        r = self.result
        if r is None:
            return "not placed"
        if not r.answered:
            return f"not answered ({r.ended_by}, INVITE {r.invite_status})"
        if self.apologies:
            return f"heard the apology ({'+'.join(self.heard[-4:])})"
        if r.bye_status not in (None, 200):
            return f"audio stopped, the caller's BYE got {r.bye_status}"
        if r.ended_by in ("timeout", "error"):
            return f"call {r.ended_by}"
        if not self.heard:
            return f"heard nothing on port {self.media_port} ({r.summary()})"
        return f"no confirmation heard ({'+'.join(self.heard[-4:])})"


@dataclass
class Fault:
    name: str
    at: float
    until: float = 0.0
    settle_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cluster:
    stack: stack.Stack
    values: dict[str, str]
    url: str
    sip_port: int
    agent_ports: dict[str, int]

    def api(self, node: str, path: str) -> int:
        port = self.values[f"IVR_TEST_API{node[-1]}_PORT"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def primary(self) -> str | None:
        return next((n for n in PG_NODES if self.api(n, "primary") == 200), None)

    def running(self, service: str) -> bool:
        return bool(self.stack.state(service).get("Running"))

    def asterisk(self, node: str, command: str) -> str:
        return self.stack.exec(node, "asterisk", "-rx", command)

    def calls_on(self, node: str) -> int:
        for line in self.asterisk(node, "core show calls").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].isdigit() and "active" in line:
                return int(words[0])
        return 0

    def set_office_clock(self, node: str) -> None:
        epoch = int(stack.OFFICE_MOMENT.timestamp())
        out = self.asterisk(node, f"dialplan set global IVR_CLOCK_EPOCH {epoch}")
        if "set to" not in out:
            raise DeployTestFailed(f"{node} refused the clock: {out}")

    def cpu_seconds(self, service: str) -> float:
        """CPU time (user and system) of the processes in the service's container now."""
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", self.stack.container(service)))
        return tree_cpu_seconds(pid)

    def transactions(self) -> int:
        """Transactions committed or rolled back in the application's database so far, as
        the primary counts them (psql in its container; the password in psql's
        environment only)."""
        node = self.primary()
        if node is None:
            raise DeployTestFailed("no primary to count transactions on")
        query = (
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'ivr12333'"
        )
        container = self.stack.container(node)
        command: list[str | Path] = [PODMAN, "exec", "-e", "PGPASSWORD", container, "psql"]
        command += ["-h", "127.0.0.1", "-p", self.values[f"IVR_TEST_PG{node[-1]}_PORT"]]
        command += ["-U", "ivr12333", "-d", "ivr12333", "-AtXc", query]
        env = {**os.environ, "PGPASSWORD": self.values["POSTGRES_PASSWORD"]}
        return int(run(command, env=env).stdout.strip())

    def load_sample(self) -> dict[str, float]:
        sample = {service: self.cpu_seconds(service) for service in LOADED}
        sample["transactions"] = self.transactions()
        sample["at"] = time.time()
        return sample

    def kamailio_log(self) -> str:
        proc = run([PODMAN, "logs", self.stack.container("kamailio")], check=False)
        return proc.stdout + proc.stderr


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (as /proc has them now)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        one = todo.pop()
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{one}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return total


def wait_for(check: Any, what: str, within: float = 120, every: float = 0.5) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(every)
    raise DeployTestFailed(f"{what}: not within {within:.0f} s")


# --- images, files, start ------------------------------------------------------------------


def images(report: Report, work: Path, no_cache: bool, rebuild: bool) -> None:
    """The single box's images (stack.py builds them when missing), then the cluster's."""
    stack.images(report, work, no_cache, reuse=not rebuild)
    for image, dockerfile in ((DB_IMAGE, "db.Dockerfile"), (KAMAILIO_IMAGE, "kamailio.Dockerfile")):
        exists = run([PODMAN, "image", "exists", image], check=False).returncode == 0
        if rebuild or not exists:
            with report.stage(f"build {image}"):
                stack.build(
                    image,
                    DOCKER / dockerfile,
                    ROOT,
                    {"BASE_IMAGE": stack.PYTHON_BASE},
                    work / "build.log",
                    no_cache=no_cache,
                )
        report.images[image] = stack.image_size(image)


def write_files(work: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The env file (this run's secrets, free ports), each Asterisk node's site folder and
    Kamailio's list of nodes."""
    from tests.sip_phones import free_udp_port

    tcp = stack.distinct_free_ports(9)
    udp: set[int] = set()
    while len(udp) < 5:
        udp.add(free_udp_port())
    sip, node1, node2, phone1, phone2 = sorted(udp)
    names = ("ETCD", "ETCD_PEER", "PG1", "PG2", "API1", "API2", "AGI1", "AGI2", "CONSOLE")
    values = {f"IVR_TEST_{name}_PORT": str(port) for name, port in zip(names, tcp, strict=True)}
    values.update(
        POSTGRES_PASSWORD=secrets.token_hex(24),
        IVR_REPLICATION_PASSWORD=secrets.token_hex(24),
        IVR_PIN_PEPPER=secrets.token_hex(32),
        IVR_TEST_SIP_PORT=str(sip),
        IVR_TEST_NOW=stack.OFFICE_MOMENT.isoformat(),
        IVR_IMAGE_TAG="latest",
    )
    agi = (values["IVR_TEST_AGI1_PORT"], values["IVR_TEST_AGI2_PORT"])
    agent_ports = {}
    for node, sip_port, phone in (("asterisk1", node1, phone1), ("asterisk2", node2, phone2)):
        site = work / f"site-{node}"
        stack.write_site(site, agi, phone)
        # Both nodes share the host's network here: each moves the image's loopback
        # transport (127.0.0.1:5070) to a port of its own.
        with (site / "pjsip_site.conf").open("a", encoding="utf-8") as out:
            out.write(f"\n[transport-loopback](+)\nbind = 127.0.0.1:{sip_port}\n")
        values[f"IVR_{node.upper()}_SITE_DIR"] = str(site)
        values[f"IVR_TEST_{node.upper()}_SIP_PORT"] = str(sip_port)
        agent_ports[node] = phone
    listing = work / "dispatcher.list"
    listing.write_text(f"1 sip:127.0.0.1:{node1}\n1 sip:127.0.0.1:{node2}\n", encoding="utf-8")
    listing.chmod(0o644)
    values["IVR_KAMAILIO_DISPATCHER_LIST"] = str(listing)
    env_file = work / "test.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return values, agent_ports


def database_url(values: dict[str, str]) -> str:
    ports = f"{values['IVR_TEST_PG1_PORT']},{values['IVR_TEST_PG2_PORT']}"
    return (
        f"postgresql+asyncpg://ivr12333:{values['POSTGRES_PASSWORD']}@/ivr12333"
        f"?host=127.0.0.1,127.0.0.1&port={ports}&target_session_attrs=read-write"
    )


def up(cluster: Cluster, report: Report) -> None:
    s = cluster.stack
    with report.stage("compose up -d (health checks included)"):
        try:
            s.compose("up", "-d", "--no-build", timeout=1200)
        except DeployTestFailed as exc:
            # podman 4.3's Docker API can lose a one-shot container's exit (stack.up).
            if "no such process" not in str(exc):
                raise
            print("   podman lost a container's exit; compose up again", flush=True)
            s.compose("up", "-d", "--no-build", timeout=1200)
        s.wait_healthy(limit=600)
    for one_shot in ("dbinit", "migrate"):
        state = s.state(one_shot)
        report.check(
            not state.get("Running") and state.get("ExitCode") == 0,
            f"{one_shot} ran once and exited 0",
            state,
        )
    finished = s.state("migrate").get("FinishedAt", "")
    for service in ("agi1", "agi2", "console"):
        started = s.state(service).get("StartedAt", "")
        report.check(
            bool(finished) and finished < started,
            f"{service} started after the migration finished",
            (finished, started),
        )
    primary = cluster.primary()
    report.check(primary is not None, "a Patroni node is the primary", primary)
    wait_for(lambda: any(cluster.api(n, "sync") == 200 for n in PG_NODES), "a sync standby", 120)
    report.check(True, "the other Patroni node streams as the synchronous standby")
    for node in NODES:
        cluster.set_office_clock(node)
    # Kamailio's first OPTIONS probes (every second) see both nodes answer.
    time.sleep(3)


# --- the database, from this process --------------------------------------------------------


@contextlib.contextmanager
def service_database(url: str, pepper: str) -> Any:
    """This process's backend on the cluster's database, with the cluster's pepper, for
    seeding cards and reading the results."""
    from tests.settings_env import settings_environment

    with settings_environment(
        {
            "IVR_DATABASE_URL": url,
            "IVR_PIN_PEPPER": pepper,
            "IVR_ENV": "test",
            "IVR_NOW_OVERRIDE": stack.OFFICE_MOMENT.isoformat(),
        }
    ):
        yield


async def seed_cards(n: int) -> list[Any]:
    """Cards on a PIN of the holder's choosing (not the initial one), a few at a time."""
    from backend.outcomes import Actor, Channel
    from backend.services.cards import issue_card
    from tests.conftest import IssuedCard, make_card_number, make_id_number, make_pin

    actor = Actor(Channel.OPERATOR, "cluster-test")

    async def one() -> Any:
        card = IssuedCard(make_card_number("K"), make_id_number(), "周九", make_pin())
        await issue_card(card.card_number, card.id_number, card.name, actor, pin=card.pin)
        return card

    cards: list[Any] = []
    while len(cards) < n:
        cards += await asyncio.gather(*(one() for _ in range(5)))
    return cards


async def handoff_reasons(call_id: str) -> list[str]:
    from sqlalchemy import text

    from backend.db.engine import get_engine

    async with get_engine().connect() as conn:
        query = text("SELECT reason FROM handoffs WHERE call_id = :call_id")
        return list((await conn.execute(query, {"call_id": call_id})).scalars())


def on_database(what: Any) -> Any:
    """`what()` awaited in an event loop of its own, the engine disposed of after (an
    engine belongs to the loop it was made in)."""
    from backend.db.engine import dispose_all

    async def once() -> Any:
        try:
            return await retrying(what)
        finally:
            await dispose_all()

    return asyncio.run(once())


async def retrying(what: Any, tries: int = 20) -> Any:
    """A read from this process right after a change of primary may meet the gap."""
    from backend.db.engine import dispose_all

    for n in range(tries):
        try:
            return await what()
        except Exception:
            if n == tries - 1:
                raise
            await dispose_all()
            await asyncio.sleep(2)
    return None


# --- calls ---------------------------------------------------------------------------------


def queue_on_every_node(cluster: Cluster, report: Report) -> dict[str, Any]:
    """Initial-PIN holders report a loss through Kamailio until each node's agent phone
    has answered one: the queue works on every node; the hand-off is stored."""
    from asterisk_local import caller
    from tests.e2e.test_calls import entry
    from tests.sip_phones import AgentPhone

    reached: dict[str, str] = {}
    tries = 0
    while len(reached) < len(NODES) and tries < 6:
        tries += 1
        card = stack.issue_card(cluster.stack)
        keys = " ".join(
            [
                "wait:2",
                entry(card.digits),
                entry("123456"),
                entry(card.id_number),
                # The refusal, then its choices: 0 for an agent (again, should the first
                # fall within the refusal itself).
                "wait:10 0",
                "wait:6 0",
                "wait:30",
            ]
        )
        phones = {n: AgentPhone(cluster.agent_ports[n], talk_s=1.5, timeout=120) for n in NODES}
        for phone in phones.values():
            phone.start()
        try:
            result = caller.place_call("123332", keys, sip_port=cluster.sip_port, timeout=150)
            print(f"   queue call {tries}: {result.summary()}", flush=True)
            answers = {n: p.result(1 if n in reached else 20) for n, p in phones.items()}
        finally:
            for phone in phones.values():
                phone.stop()
        for node, agent in answers.items():
            if agent.answered and node not in reached:
                reason = agent.invite_headers.get("x-ivr-reason")
                call_id = agent.invite_headers.get("x-ivr-call-id", "")
                report.check(
                    reason == "initial-pin-loss-report",
                    f"{node}: the agent's phone answered, reason initial-pin-loss-report",
                    agent.invite_headers,
                )
                rows = on_database(lambda c=call_id: handoff_reasons(c))
                report.check(
                    rows == ["initial-pin-loss-report"],
                    f"{node}: the hand-off is stored in PostgreSQL under the call id",
                    rows,
                )
                reached[node] = call_id
    report.check(
        sorted(reached) == sorted(NODES), "the agent queue answered through every node", reached
    )
    return {"queue_calls": tries, "nodes_reached": sorted(reached)}


def keys_for(call: Call) -> str:
    from tests.e2e.test_calls import change_pin_keys, loss_keys

    if call.kind == "change":
        return change_pin_keys(call.card, call.card.pin, call.new_pin)
    return loss_keys(call.card, call.card.pin)


def place(call: Call, sip_port: int) -> None:
    from asterisk_local import caller

    call.at = time.time()
    call.result = caller.place_call(
        "12333", keys_for(call), sip_port=sip_port, timeout=CALL_LIMIT_S, media_port=call.media_port
    )


async def stream(
    cluster: Cluster, cards: list[Any], stop: asyncio.Event, calls: list[Call]
) -> None:
    """Callers through Kamailio, CALL_GAP_S apart, each on a card of its own, until told."""
    from tests.faults.test_database_faults import new_pin_for

    running: list[asyncio.Task[None]] = []
    n = 0
    while not stop.is_set():
        if not cards:
            raise DeployTestFailed("not enough seeded cards for the stream")
        card = cards.pop()
        # Two of a kind in turn: Kamailio's round robin then gives each node both kinds.
        kind = ("change", "loss")[n // 2 % 2]
        call = Call(kind, card, new_pin_for(card) if kind == "change" else "", 0, time.time())
        call.media_port = media_port([c.media_port for c in calls if c.result is None])
        calls.append(call)
        running.append(asyncio.create_task(asyncio.to_thread(place, call, cluster.sip_port)))
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CALL_GAP_S)
    await asyncio.gather(*running)


def media_port(in_use: Sequence[int]) -> int:
    """An even UDP port for a caller's media, free with the three above it and four or
    more away from every call still going: SIPp binds the ports after its media port too,
    and a call whose port another SIPp holds hears nothing."""
    from asterisk_local import caller

    while True:
        port = caller.free_udp_port()
        if port % 2 or port > 65530 or any(abs(port - other) < 4 for other in in_use):
            continue
        if all(caller.udp_port_free(port + n) for n in range(4)):
            return port


def kill(service: str, cluster: Cluster) -> float:
    at = time.time()
    podman("kill", cluster.stack.container(service))
    wait_for(lambda: not cluster.running(service), f"{service} gone", 30, 0.2)
    return at


def start_again(service: str, cluster: Cluster) -> None:
    """The killed container started again (podman does not restart one it killed)."""
    if not cluster.running(service):
        podman("start", cluster.stack.container(service))

    def healthy() -> bool:
        run([PODMAN, "healthcheck", "run", cluster.stack.container(service)], check=False)
        return cluster.stack.health(service) == "healthy"

    wait_for(healthy, f"{service} healthy again", 180, 2)


async def faults(
    cluster: Cluster,
    cards: list[Any],
    calls: list[Call],
    done: list[Fault],
    load: list[dict[str, float]],
) -> None:
    """The stream of callers, and the faults while it runs. Each fault's new calls are
    those placed in the OBSERVE_S after it; the next fault waits until they have ended, so
    that a call is judged by one fault only."""
    loop = asyncio.get_running_loop()
    # Each call holds a thread for its whole length: enough threads for all at once.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=64))
    stop = asyncio.Event()
    callers = asyncio.create_task(stream(cluster, cards, stop, calls))
    to_thread = asyncio.to_thread
    started = time.time()

    async def until(moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - time.time()))

    async def observed(fault: Fault) -> None:
        fault.until = fault.at + OBSERVE_S
        await until(fault.until)
        done.append(fault)

    try:
        await until(started + LOAD_FROM_S)
        load.append(await to_thread(cluster.load_sample))
        await until(started + WARM_UP_S)
        load.append(await to_thread(cluster.load_sample))

        # a. An Asterisk node's container killed, started again once its window is over.
        carried = {n: await to_thread(cluster.calls_on, n) for n in NODES}
        node = max(NODES, key=lambda n: carried[n])
        fault = Fault(f"Asterisk node {node} killed", 0.0, settle_s=SETTLE_S["asterisk"])
        fault.at = await to_thread(kill, node, cluster)
        fault.notes.update(carried_by_killed_node=carried[node], calls_on_each_node=carried)
        down_line = f"sip:127.0.0.1:{cluster.values[f'IVR_TEST_{node.upper()}_SIP_PORT']} down"

        def marked_down() -> bool:
            return down_line in cluster.kamailio_log()

        seen = await to_thread(wait_for, marked_down, "Kamailio marks the node down", 30, 0.2)
        fault.notes["kamailio_marked_node_down_after_s"] = round(seen - fault.at, 2)
        await observed(fault)
        back_at = time.time()
        await to_thread(start_again, node, cluster)
        await to_thread(cluster.set_office_clock, node)
        up_line = down_line.replace(" down", " up")
        seen = await to_thread(wait_for, lambda: up_line in cluster.kamailio_log(), "node up", 30)
        fault.notes["node_started_again_and_back_in_kamailio_after_s"] = round(seen - back_at, 2)

        # b. A FastAGI server's container killed, started again once its window is over.
        await until(fault.until + CALL_MAX_S)
        fault = Fault("FastAGI server agi1 killed", 0.0, settle_s=SETTLE_S["agi"])
        fault.at = await to_thread(kill, "agi1", cluster)
        await observed(fault)
        await to_thread(start_again, "agi1", cluster)

        # c. patronictl switchover; once the old primary is the synchronous standby again,
        # the new primary's container killed.
        await until(fault.until + CALL_MAX_S)
        old = cluster.primary()
        if old is None:
            raise DeployTestFailed("no primary before the switchover")
        other = next(n for n in PG_NODES if n != old)
        fault = Fault(f"patronictl switchover {old} -> {other}", 0.0)
        fault.settle_s = SETTLE_S["switchover"]
        fault.at = time.time()
        await to_thread(
            cluster.stack.exec,
            old,
            *("patronictl", "-c", "/etc/patroni/patroni.yml", "switchover"),
            *("--leader", old, "--candidate", other, "--force"),
        )
        fault.notes["switchover_command_s"] = round(time.time() - fault.at, 2)
        seen = await to_thread(wait_for, lambda: cluster.primary() == other, "new primary", 60)
        fault.notes["new_primary_after_s"] = round(seen - fault.at, 2)
        seen = await to_thread(
            wait_for, lambda: cluster.api(old, "sync") == 200, f"{old} sync standby again", 120
        )
        fault.notes["old_primary_sync_standby_again_after_s"] = round(seen - fault.at, 2)
        await observed(fault)

        await until(fault.until + CALL_MAX_S)
        fault = Fault(f"primary {other} killed (its container)", 0.0, settle_s=SETTLE_S["primary"])
        fault.at = await to_thread(kill, other, cluster)
        seen = await to_thread(wait_for, lambda: cluster.primary() == old, "failover", 90)
        fault.notes["standby_promoted_after_s"] = round(seen - fault.at, 2)
        await observed(fault)
    finally:
        stop.set()
        await callers


def summarise(calls: list[Call], done: list[Fault], in_db: dict[str, Any]) -> dict[str, Any]:
    """Per-fault figures: calls placed in its window, those it cut and why, seconds until
    new calls were served, changes heard as done versus in the database."""
    out: dict[str, Any] = {"faults": []}
    first_fault = done[0].at
    before = [c for c in calls if c.ended_at < first_fault]
    out["before_the_faults"] = {
        "calls": len(before),
        "served": sum(c.done for c in before),
        "not_served": [c.why_not() for c in before if not c.done],
    }
    for fault in done:
        cut = [c for c in calls if c.at < fault.at <= c.ended_at]
        placed = [c for c in calls if fault.at <= c.at < fault.until]
        served = [c for c in placed if c.done]
        first = min((c.answered_at or 0) - fault.at for c in served) if served else None
        late = [c for c in placed if c.at >= fault.at + fault.settle_s]
        out["faults"].append(
            {
                "fault": fault.name,
                "calls_in_progress": len(cut),
                "in_progress_served_anyway": sum(c.done for c in cut),
                "in_progress_lost": len([c for c in cut if not c.done]),
                "lost_why": sorted({c.why_not() for c in cut if not c.done}),
                "calls_placed_during": len(placed),
                "placed_during_served": len(served),
                "placed_during_not_served": [
                    f"{c.at - fault.at:+.1f} s: {c.why_not()}" for c in placed if not c.done
                ],
                "first_new_call_served_answered_after_s": None
                if first is None
                else round(first, 2),
                "settle_s": fault.settle_s,
                "placed_after_settling_served": f"{sum(c.done for c in late)}/{len(late)}",
                "most_apologies_one_caller_heard": max(
                    (c.apologies for c in (*cut, *placed)), default=0
                ),
                **fault.notes,
            }
        )
    out["database"] = in_db
    return out


def load_figures(calls: list[Call], load: list[dict[str, float]]) -> dict[str, Any]:
    """What each part spent on the calls between the two samples before the first fault:
    CPU per second of call in progress, and database transactions."""
    if len(load) < 2:
        return {}
    first, last = load[0], load[-1]
    span = last["at"] - first["at"]
    call_s = sum(
        max(0.0, min(c.ended_at, last["at"]) - max(c.answered_at or c.ended_at, first["at"]))
        for c in calls
    )
    cpu = {name: last[name] - first[name] for name in LOADED}
    parts = {
        "kamailio": cpu["kamailio"],
        "asterisk_both_nodes": cpu["asterisk1"] + cpu["asterisk2"],
        "fastagi_both_servers": cpu["agi1"] + cpu["agi2"],
        "postgresql_both_nodes": cpu["pg1"] + cpu["pg2"],
    }
    served = [c.result.talk_s for c in calls if c.done and c.result.talk_s]
    mean_call_s = sum(served) / len(served) if served else 0.0
    transactions = last["transactions"] - first["transactions"]
    return {
        "window_s": round(span, 1),
        "calls_at_once_mean": round(call_s / span, 1),
        "call_seconds": round(call_s),
        "mean_served_call_s": round(mean_call_s, 1),
        "cpu_ms_per_call_second": {k: round(1000 * v / call_s, 1) for k, v in parts.items()},
        "cpu_ms_per_call": {k: round(1000 * v / call_s * mean_call_s) for k, v in parts.items()},
        "cores_busy": {k: round(v / span, 2) for k, v in parts.items()},
        "db_transactions_per_s": round(transactions / span, 2),
        "db_transactions_per_call": round(transactions / call_s * mean_call_s, 1),
    }


def read_heard(calls: list[Call], wire: Any, prompts: Any, log: Path) -> None:
    """Each call's prompts as the wire carried them; every call written to `log` (no card
    numbers or PINs: the call's kind, times, ports, SIP outcome and prompts)."""
    lines = []
    for call in calls:
        call.heard = wire.heard(call.media_port, prompts).prompts()
        lines.append(
            {
                "kind": call.kind,
                "at": round(call.at, 2),
                "media_port": call.media_port,
                "result": call.result.summary() if call.result is not None else None,
                "heard": call.heard,
            }
        )
    log.write_text(json.dumps(lines, ensure_ascii=False, indent=1), encoding="utf-8")


async def check_database(calls: list[Call], before: Any, report: Report) -> dict[str, Any]:
    """Every change heard as done is in PostgreSQL, as many as were heard; nothing is
    half-written (tests/faults/ledger.py)."""
    from tests.faults import ledger

    after = await ledger.snapshot()
    changes = ledger.compare(before, after)
    on_record = await ledger.reported_cards()
    change_calls = [c for c in calls if c.kind == "change"]
    loss_calls = [c for c in calls if c.kind == "loss"]
    heard_changes = [c for c in change_calls if c.done]
    heard_losses = [c for c in loss_calls if c.done]
    changed = [
        c for c in change_calls if after.pins[c.card.card_number] != before.pins[c.card.card_number]
    ]
    reported = [c for c in loss_calls if c.card.card_number in on_record]
    figures = {
        "pin_changes_heard_as_done": len(heard_changes),
        "pin_changes_in_database": len(changed),
        "pin_changes_heard_and_in_database": len([c for c in heard_changes if c in changed]),
        "loss_reports_heard_as_done": len(heard_losses),
        "loss_reports_in_database": len(reported),
        "loss_reports_heard_and_in_database": len([c for c in heard_losses if c in reported]),
        "half_written": changes.half_written,
        "changes_in_database_not_heard": [
            f"{c.kind} {c.why_not()}" for c in (*changed, *reported) if not c.done
        ],
    }
    report.check(not changes.half_written, "nothing half-written", changes.half_written)
    report.check(
        figures["pin_changes_heard_and_in_database"] == len(heard_changes)
        and figures["loss_reports_heard_and_in_database"] == len(heard_losses),
        "every change heard as done is in PostgreSQL",
        figures,
    )
    report.check(
        len(changed) == len(heard_changes) and len(reported) == len(heard_losses),
        "as many changes in PostgreSQL as were heard as done "
        f"({len(heard_changes)} PIN changes, {len(heard_losses)} loss reports)",
        figures,
    )
    return figures


def check_faults(summary: dict[str, Any], report: Report) -> None:
    before = summary["before_the_faults"]
    report.check(
        before["calls"] >= 3 and before["served"] == before["calls"],
        f"every call before the faults served ({before['served']}/{before['calls']})",
        before,
    )
    for fault in summary["faults"]:
        name = fault["fault"]
        settled = fault["placed_after_settling_served"]
        ok, total = (int(x) for x in settled.split("/"))
        report.check(total >= 2 and ok == total, f"{name}: later calls served ({settled})", fault)
        first = fault["first_new_call_served_answered_after_s"]
        report.check(first is not None, f"{name}: new calls served, first after {first} s", fault)
        report.check(
            fault["most_apologies_one_caller_heard"] <= 1,
            f"{name}: no caller heard more than one apology",
            fault,
        )
    node = summary["faults"][0]
    report.check(
        node["in_progress_lost"] <= node["carried_by_killed_node"],
        f"Asterisk node killed: {node['in_progress_lost']} calls lost, at most the "
        f"{node['carried_by_killed_node']} it carried",
        node,
    )


def print_summary(summary: dict[str, Any]) -> None:
    print("\nfaults:")
    for fault in summary["faults"]:
        print(f"  {fault['fault']}")
        for key, value in fault.items():
            if key != "fault":
                print(f"    {key}: {value}")
    print("load before the faults:")
    for key, value in summary.get("load_before_the_faults", {}).items():
        print(f"  {key}: {value}")
    print("database:")
    for key, value in summary["database"].items():
        print(f"  {key}: {value}")


# --- the whole run -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rebuild", action="store_true", help="build the images even if they exist"
    )
    parser.add_argument("--no-cache", action="store_true", help="build without cached layers")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up on failure")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures go")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: podman's vfs storage and the loopback capture need it", file=sys.stderr)
        return 2
    from asterisk_local import caller
    from tests.e2e.test_kamailio import routed_scenario
    from tests.faults.test_asterisk_faults import Prompts, Wire

    work = ROOT / ".local" / "cluster-test" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    # The callers are UAs behind a proxy: ACK and BYE follow Kamailio's Record-Route.
    caller.SCENARIO = routed_scenario(work)
    report = Report()
    s: stack.Stack | None = None
    ok = False
    summary: dict[str, Any] = {}
    calls: list[Call] = []
    done: list[Fault] = []
    load: list[dict[str, float]] = []
    try:
        with report.stage("host tools (podman, runc, catatonit, docker-compose, sipp)"):
            stack.ensure_host_tools()
            podman("info")
        images(report, work, args.no_cache, args.rebuild)
        with report.stage("podman API service, env file, site folders, dispatcher list"):
            service, sock = stack.start_api_service(work)
            values, agent_ports = write_files(work)
            # docker-compose takes a variable from the environment before the env file:
            # the test modules imported here set some of them (tests/conftest.py's pepper).
            for name in values:
                os.environ.pop(name, None)
            resolved = stack.resolve_compose(work, work / "test.env", (COMPOSE, OVERRIDE), PROJECT)
            s = stack.Stack(work, resolved, values, sock, service, PROJECT, SERVICES, LONG_RUNNING)
            s.start_health_ticker()
        cluster = Cluster(
            s, values, database_url(values), int(values["IVR_TEST_SIP_PORT"]), agent_ports
        )
        up(cluster, report)
        # The ticker's podman calls cost CPU the calls need; restarted containers are
        # checked one by one (start_again).
        s.stop_health_ticker()
        with report.stage("prompts from the Asterisk image"):
            prompts_dir = work / "prompts"
            podman("cp", f"{s.container('asterisk1')}:{PROMPTS_IN_IMAGE}", str(prompts_dir))
            prompts = Prompts(prompts_dir)
            report.check(len(prompts.frames) > 1000, "the image's prompt files read", prompts_dir)
        with service_database(cluster.url, values["IVR_PIN_PEPPER"]):
            with report.stage("the agent queue through each Asterisk node"):
                queue = queue_on_every_node(cluster, report)
            with report.stage("seed cards"):
                from tests.faults import ledger

                cards = on_database(lambda: seed_cards(150))
                before = on_database(ledger.snapshot)
            with report.stage("calls through the faults"), Wire() as wire:
                try:
                    asyncio.run(faults(cluster, cards, calls, done, load))
                finally:
                    read_heard(calls, wire, prompts, work / "calls.json")
            with report.stage("the database checked"):
                in_db = on_database(lambda: check_database(calls, before, report))
        summary = summarise(calls, done, in_db)
        summary["load_before_the_faults"] = load_figures(calls, load)
        summary["queue"] = queue
        print_summary(summary)
        check_faults(summary, report)
        ok = True
    except DeployTestFailed as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        if done and not summary:
            with contextlib.suppress(Exception):
                summary = summarise(calls, done, {})
                print_summary(summary)
    finally:
        if s is not None:
            s.save_logs("end")
            if ok or not args.keep:
                with report.stage("teardown: down -v, API service stopped"):
                    s.stop_health_ticker()
                    s.compose("down", "-v", "--remove-orphans", check=False, timeout=600)
                    if s.service is not None:
                        stack.stop_api_service(s.service)
                    s.resolved.unlink(missing_ok=True)
                    (s.work / "test.env").unlink(missing_ok=True)
                left = stack.leftovers(s)
                if left:
                    print(f"\nleft behind: {left}", file=sys.stderr)
                    ok = False
                else:
                    report.checks.append("nothing left: no container, volume or process")
        report.print()
        print(f"log: {work}")
    if summary:
        summary.update(
            passed=ok,
            when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            stages={name: round(seconds, 1) for name, seconds in report.stages},
            images_mb={k: round(v / 1e6) for k, v in report.images.items()},
            calls_placed=len(calls),
            call_gap_s=CALL_GAP_S,
        )
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
        print(f"figures: {args.results}")
    print("cluster-test: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
