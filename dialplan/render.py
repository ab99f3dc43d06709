"""Renders the project's Asterisk configuration for one local instance.

The templates are the `*.conf` files next to this module; `@NAME@` marks a value filled in
here. Office hours are generated (see `dialplan.hours`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from backend.settings import Settings, get_settings
from backend.workcalendar import WorkCalendar
from dialplan import hours

TEMPLATE_DIR = Path(__file__).resolve().parent
TEMPLATES = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "musiconhold.conf",
    "indications.conf",
    "pjsip.conf",
    "extensions.conf",
    "queues.conf",
    "cdr.conf",
    "cel.conf",
    "features.conf",
    "ccss.conf",
    "udptl.conf",
    "acl.conf",
    "stasis.conf",
    "pjproject.conf",
    "websocket_client.conf",
)
HOURS_FILE = "extensions_hours.conf"

_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
_SERVER = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class Agent:
    """An agent's phone: PJSIP endpoint `name`, member of the agent queue.

    With `port`, the phone is a fixed SIP address 127.0.0.1:port (a test phone); without,
    it registers itself (a softphone on this machine).
    """

    name: str
    port: int | None = None


DEFAULT_AGENTS = (Agent("agent1"), Agent("agent2"))


@dataclass(frozen=True)
class Setup:
    """What one local Asterisk instance is configured with."""

    agi_servers: tuple[str, ...]
    sip_port: int = 5060
    agents: tuple[Agent, ...] = DEFAULT_AGENTS
    instance: str = "local"
    # Longest wait in the agent queue before the caller is told to call back, seconds.
    queue_wait_s: int = 120
    # Unix time the office-hours check uses instead of the clock (tests).
    clock_epoch: int | None = None
    # File name -> text that replaces the rendered file (tests of broken configurations).
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.agi_servers:
            raise ValueError("at least one FastAGI server is needed")
        for server in self.agi_servers:
            if not _SERVER.match(server):
                raise ValueError(f"FastAGI server {server!r} is not host:port")
        if not 1 <= self.sip_port <= 65535:
            raise ValueError(f"SIP port {self.sip_port} out of range")
        if not _NAME.match(self.instance):
            raise ValueError(f"instance name {self.instance!r}: lower-case letters, digits, -")
        for agent in self.agents:
            if not _NAME.match(agent.name):
                raise ValueError(f"agent name {agent.name!r}: lower-case letters, digits, -")


def agents_block(agents: Sequence[Agent]) -> str:
    parts = []
    for agent in agents:
        lines = [f"[{agent.name}](agent-phone)", f"aors = {agent.name}", ""]
        lines.append(f"[{agent.name}](agent-contact)")
        if agent.port is not None:
            lines.append(f"contact = sip:{agent.name}@127.0.0.1:{agent.port}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) if parts else "; no agent phones in this setup"


def members_block(agents: Sequence[Agent]) -> str:
    if not agents:
        return "; no members: callers hear the apology at once (joinempty)"
    return "\n".join(f"member => PJSIP/{a.name},0,{a.name}" for a in agents)


def _fill(name: str, text: str, values: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"{name}: no value for @{key}@")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def render(setup: Setup, settings: Settings | None = None) -> dict[str, str]:
    """File name -> text of every configuration file of the instance."""
    settings = settings or get_settings()
    # Strict: a bad year file stops the install rather than silently dropping holidays.
    calendar = WorkCalendar.load(settings.calendar_dir)
    # A pretended clock needs the calendar years around it, not around today.
    today = (
        None
        if setup.clock_epoch is None
        else dt.datetime.fromtimestamp(setup.clock_epoch, ZoneInfo(settings.timezone)).date()
    )
    plan = hours.build_plan(
        settings.office_sessions, settings.timezone, today=today, calendar=calendar
    )
    values = {
        "INSTANCE": setup.instance,
        "SIP_PORT": str(setup.sip_port),
        "AGI_SERVERS": "&".join(setup.agi_servers),
        "QUEUE_WAIT": str(setup.queue_wait_s),
        "CLOCK_EPOCH": "" if setup.clock_epoch is None else str(setup.clock_epoch),
        "CALENDAR_YEARS": hours.calendar_years_global(plan),
        "AGENTS": agents_block(setup.agents),
        "MEMBERS": members_block(setup.agents),
    }
    files = {
        name: _fill(name, (TEMPLATE_DIR / name).read_text(encoding="utf-8"), values)
        for name in TEMPLATES
    }
    files[HOURS_FILE] = hours.render(plan)
    files.update(setup.overrides)
    return files
