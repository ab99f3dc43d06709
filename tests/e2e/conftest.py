"""Real Asterisk 22 and SIPp for end-to-end tests.

`e2e_asterisk` starts one Asterisk for the session with the project's dialplan, pointed at
two FastAGI addresses on free ports (tried in turn) and one agent phone with a fixed address.
Nothing listens on those ports unless a test starts a server there. The first run builds the
Debian sid root folder (a minute or two).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from asterisk_local import caller
from asterisk_local import instance as local
from backend.settings import get_settings
from dialplan.render import Agent
from tests import sip_phones


@dataclass
class E2EAsterisk:
    instance: local.Instance
    # FastAGI addresses in the order the dialplan tries them.
    agi_ports: tuple[int, int]
    agent_port: int

    @property
    def sip_port(self) -> int:
        return self.instance.sip_port

    def cli(self, command: str) -> str:
        return self.instance.cli(command)

    def set_clock(self, at: dt.datetime | None) -> None:
        """Office hours are judged at `at` (None: the real clock)."""
        value = '""' if at is None else str(int(at.timestamp()))
        out = self.cli(f"dialplan set global IVR_CLOCK_EPOCH {value}")
        assert "set to" in out, out  # the CLI answers a usage error with exit status 0

    @contextlib.contextmanager
    def detailed_log(self) -> Iterator[Path]:
        """A log file with Asterisk's step-by-step lines (verbose 3) while the block runs.

        The service logs at level 2 (level 3 names every prompt played); a test that must see
        such details adds a logger channel of its own for a moment.
        """
        name = f"e2e-detail-{os.getpid()}"
        path = self.instance.root / f"var/log/asterisk-{self.instance.name}" / name
        path.unlink(missing_ok=True)
        self.cli(f"logger add channel {name} verbose(3)")
        try:
            yield path
        finally:
            self.cli(f"logger remove channel {name}")

    def call(self, keys: str = "", number: str = "12333", timeout: float = 60) -> CallTrace:
        """Places a call and returns it with the Asterisk log lines written meanwhile."""
        start = self.instance.log_size()
        result = caller.place_call(number, keys, sip_port=self.sip_port, timeout=timeout)
        # Asterisk writes its last lines just after the BYE.
        time.sleep(0.3)
        return CallTrace(result, self.instance.log_text(start))


_EVENT = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]\s+ivr-event (\S+) (\S+) ?(.*)$")


@dataclass(frozen=True)
class Event:
    """One `ivr-event CHANNEL WHAT DETAIL` line of the dialplan."""

    at: dt.datetime
    channel: str
    what: str
    detail: str


def parse_events(log: str) -> list[Event]:
    """The dialplan's ivr-event lines in a stretch of Asterisk's log, every channel's."""
    found = []
    for line in log.splitlines():
        if m := _EVENT.match(line):
            at = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
            found.append(Event(at, m.group(2), m.group(3), m.group(4).strip()))
    return found


@dataclass
class CallTrace:
    result: caller.CallResult
    log: str

    @property
    def events(self) -> list[Event]:
        return parse_events(self.log)

    def event(self, what: str) -> Event | None:
        """The first event `what` of the call's caller channel."""
        return next((e for e in self.events if e.what == what and "test-caller" in e.channel), None)

    def whats(self) -> list[str]:
        """The caller channel's events in order, as `what` or `what detail`."""
        return [f"{e.what} {e.detail}".strip() for e in self.events if "test-caller" in e.channel]


SHANGHAI = ZoneInfo("Asia/Shanghai")


def _distinct_tcp_ports(n: int) -> tuple[int, ...]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(sip_phones.free_tcp_port())
    return tuple(sorted(ports))


# Instances this process runs now (the session's, and a test module's own).
_RUNNING: set[str] = set()


def _forget_finished_instances() -> None:
    # Instances of earlier sessions are named after their pytest process; one whose process
    # is gone (killed mid-run) is stopped, and its log and state are dropped.
    data_dir = get_settings().data_dir
    for path in data_dir.glob("asterisk-e2e-*.*"):
        name = path.stem.removeprefix("asterisk-")
        owner = name.rsplit("-", 1)[-1]
        if path.suffix not in (".log", ".json") or not owner.isdigit() or name in _RUNNING:
            continue
        if Path(f"/proc/{owner}").exists() and int(owner) != os.getpid():
            continue  # another test session, still running
        local.down(name, purge=True)
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def running_asterisk(label: str = "") -> Iterator[E2EAsterisk]:
    """An Asterisk of this process with the project's dialplan, stopped and purged after.

    Two FastAGI addresses on free ports (tried in turn, nothing listening there until a test
    starts a server) and one agent phone with a fixed address. `label` tells apart a test
    module's own instance (one it may restart) from the session's.
    """
    if os.geteuid() != 0:
        pytest.skip("Asterisk runs in a chroot: the end-to-end tests need root")
    if shutil.which("sipp") is None:
        pytest.fail("sipp is missing: `make system-deps` installs sip-tester")
    _forget_finished_instances()
    first, second = _distinct_tcp_ports(2)
    agent_port = sip_phones.free_udp_port()
    sip_port = sip_phones.free_udp_port()
    while sip_port == agent_port:
        sip_port = sip_phones.free_udp_port()
    name = f"e2e-{label + '-' if label else ''}{os.getpid()}"
    _RUNNING.add(name)
    try:
        instance = local.up(
            [f"127.0.0.1:{first}", f"127.0.0.1:{second}"],
            sip_port,
            agents=[Agent("agent1", port=agent_port)],
            instance=name,
            queue_wait_s=10,
        )
        yield E2EAsterisk(instance, (first, second), agent_port)
    finally:
        _RUNNING.discard(name)
        local.down(name, purge=True)


@pytest.fixture(scope="session")
def e2e_asterisk() -> Iterator[E2EAsterisk]:
    with running_asterisk() as asterisk:
        yield asterisk
