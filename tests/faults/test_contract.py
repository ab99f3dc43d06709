"""The parts the fault tests rely on, one at a time: the dialplan's side of the failure
contract, the one way to the database and the error it raises, the server's one exit for
it, the bounds on every wait, and the gate that keeps a down database from being hammered.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text

from backend.db.engine import ConnectGate, get_engine
from backend.errors import ServiceUnavailable
from backend.logsetup import configure_logging
from backend.services import common
from backend.settings import get_settings
from dialplan import render
from ivr import contract
from ivr.caller import Caller
from ivr.fake_asterisk import run_call
from ivr.server import AgiServer
from prompts.catalogue import Prompt
from tests.conftest import USED_SECRETS
from tests.faults.conftest import Postgres

EXTENSIONS = Path(render.__file__).parent / "extensions.conf"


def context_lines(name: str) -> list[str]:
    """The `exten`/`same` lines of one dialplan context, comments dropped."""
    text_ = EXTENSIONS.read_text(encoding="utf-8")
    body = text_.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]
    return [
        line.strip() for line in body.splitlines() if line.strip().startswith(("exten", "same"))
    ]


def test_dialplan_sends_unavailable_to_the_one_apology() -> None:
    """IVR_NEXT=unavailable, like no decision at all, goes to [ivr-fallback], which plays
    the apology once and then the queue (office hours) or the hours and goodbye; agent
    and hangup go where they always went; nothing else in the call path apologises."""
    entry = context_lines("ivr-entry")
    branches = [line for line in entry if "IVR_NEXT" in line and "GotoIf" in line]
    assert branches == [
        f'same => n,GotoIf($["${{IVR_NEXT}}" = "{contract.NEXT_AGENT}"]?ivr-agent,s,1)',
        f'same => n,GotoIf($["${{IVR_NEXT}}" = "{contract.NEXT_HANGUP}"]?gone)',
        f'same => n,GotoIf($["${{IVR_NEXT}}" = "{contract.NEXT_UNAVAILABLE}"]?ivr-fallback,s,1)',
    ]
    after = entry[entry.index(branches[-1]) + 1 :]
    assert any("Goto(ivr-fallback,s,1)" in line for line in after)  # no decision: the same
    # A decision left from an earlier run of the menu (back from the queue) never counts.
    assert entry.index("same => n,Set(IVR_NEXT=)") < entry.index(
        next(line for line in entry if "Gosub(ivr-agi" in line)
    )
    fallback = context_lines("ivr-fallback")
    plays = [
        re.sub(r".*Playback\(ivr12333/([a-z-]+)\).*", r"\1", line)
        for line in fallback
        if "Playback" in line
    ]
    assert plays == ["service-unavailable", "agent-hours", "goodbye"]
    assert any("ivr-office-hours" in line for line in fallback)
    assert any("?ivr-agent,s,1)" in line for line in fallback)
    for context in ("ivr-entry", "ivr-agi", "ivr-agent"):
        assert not any("service-unavailable" in line for line in context_lines(context)), context


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_gate_fails_fast_then_lets_one_probe_through() -> None:
    """After a failed attempt every step is refused for the wait; then exactly one probe
    goes; its failure doubles the wait (up to the maximum), its success opens the gate."""
    clock = Clock()
    gate = ConnectGate(0.5, 2.0, clock=clock, jitter=lambda: 1.0)
    assert gate.admit() is False and not gate.shut
    gate.failed(False)
    gate.failed(False)  # an attempt under way when the gate shut: no longer wait
    assert gate.shut and gate.admit() is None
    clock.now += 0.49
    assert gate.admit() is None
    clock.now += 0.02
    assert gate.admit() is True  # the probe
    assert gate.admit() is None  # one at a time
    gate.failed(True)
    clock.now += 0.99
    assert gate.admit() is None
    clock.now += 0.02
    assert gate.admit() is True
    gate.failed(True)
    clock.now += 2.01  # 0.5, 1, then 2: the maximum
    assert gate.admit() is True
    gate.failed(True)
    clock.now += 2.01
    assert gate.admit() is True
    gate.released(True)  # the probe ended without an answer: the next step probes
    assert gate.admit() is True
    gate.connected(True)
    assert not gate.shut and gate.admit() is False


def test_gate_waits_carry_jitter() -> None:
    """Two processes shut at the same moment do not retry at the same moment."""
    waits = set()
    for factor in (0.8, 1.2):
        clock = Clock()
        gate = ConnectGate(1.0, 4.0, clock=clock, jitter=functools.partial(float, factor))
        gate.failed(False)
        while gate.admit() is None:
            clock.now += 0.01
        waits.add(round(clock.now - 100.0, 2))
    assert waits == {0.8, 1.2}


def as_ms(shown: str) -> int:
    """PostgreSQL's way of showing a duration ("1500ms", "2s", "1min") in ms."""
    number, unit = re.fullmatch(r"(\d+)(ms|s|min)", shown).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 1, "s": 1000, "min": 60_000}[unit]


async def test_every_connection_is_bounded(postgres: Postgres) -> None:
    """Each connection the application opens carries the statement and lock timeouts
    from the settings; the pool waits at most its setting for a free connection."""
    s = get_settings()
    async with common.transaction() as conn:
        statement = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
        lock = (await conn.execute(text("SHOW lock_timeout"))).scalar_one()
        commit = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    assert as_ms(statement) == s.db_statement_timeout_ms
    assert as_ms(lock) == s.db_lock_timeout_ms
    assert commit == "on"  # a commit the caller heard about is on disk before the answer
    assert get_engine().pool.timeout() == s.db_pool_wait_seconds  # type: ignore[attr-defined]


async def test_slow_statement_is_cut_and_hides_its_sql(postgres: Postgres) -> None:
    """A statement running past the statement timeout ends the step within the bound as
    ServiceUnavailable: no SQL text, no bound value, nothing chained to it."""
    secret = "805147"
    USED_SECRETS.add(secret)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        async with common.transaction() as conn:
            await conn.execute(text("SELECT pg_sleep(10), CAST(:v AS text)"), {"v": secret})
    took = time.monotonic() - started
    assert (
        get_settings().db_statement_timeout_ms / 1000 <= took < get_settings().db_step_seconds + 0.5
    )
    exc = caught.value
    assert exc.__cause__ is None and exc.__context__ is None
    for word in ("pg_sleep", "SELECT", secret):
        assert word not in str(exc)
        assert word not in repr(exc)


def failing_flow(caller: Caller) -> None:
    caller.play(Prompt.WELCOME)
    structlog.contextvars.bind_contextvars(step="verify")
    raise ServiceUnavailable("the card service failed: cannot connect")


def buggy_flow(caller: Caller) -> None:
    caller.play(Prompt.WELCOME)
    raise KeyError("bug")


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Path]:
    """The application's JSON log, to a file of this test's own."""
    saved = structlog.get_config()
    path = tmp_path / "app.log"
    configure_logging("info", path, stream=None)
    yield path
    structlog.configure(**saved)


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_server_hands_an_outage_to_the_dialplan(json_log: Path) -> None:
    """A flow that meets ServiceUnavailable: the caller hears nothing more from the
    handler, the call returns with IVR_NEXT=unavailable and the reason for the agent's
    screen; one warning with the call id and step, no traceback, no server error."""
    server = AgiServer({"fails": failing_flow}, drain_seconds=1.0)
    port = await server.start("127.0.0.1", 0)
    transcript = await run_call("127.0.0.1", port, "fails", [])
    await server.drain()
    logs = read_events(json_log)
    assert transcript.heard == ["welcome"]
    assert transcript.ended == "agi-returned"
    assert transcript.variables[contract.VAR_NEXT] == contract.NEXT_UNAVAILABLE
    assert transcript.variables[contract.VAR_AGENT_REASON] == contract.REASON_SERVICE_UNAVAILABLE
    assert transcript.variables[contract.VAR_CALL_ID]
    assert not server.errors and server.errors_seen == 0
    warnings = [e for e in logs if e["level"] in ("warning", "error")]
    assert [e["event"] for e in warnings] == ["call.service_unavailable"]
    (warning,) = warnings
    assert warning["step"] == "verify" and warning["call_id"] and warning["at"]
    assert "exception" not in warning


async def test_server_gives_a_bug_the_same_single_apology() -> None:
    """A flow's bug is logged with its traceback and recorded, and the caller gets the
    same ending as an outage: nothing from the handler, one apology from the dialplan."""
    server = AgiServer({"bug": buggy_flow}, drain_seconds=1.0)
    port = await server.start("127.0.0.1", 0)
    transcript = await run_call("127.0.0.1", port, "bug", [])
    await server.drain()
    assert transcript.heard == ["welcome"]
    assert transcript.variables[contract.VAR_NEXT] == contract.NEXT_UNAVAILABLE
    assert contract.VAR_AGENT_REASON not in transcript.variables  # the dialplan's own
    assert [e.kind for e in server.errors] == ["KeyError"]


def _settings_fields() -> dict[str, Any]:
    return dict(get_settings().model_dump())


def test_bounds_add_up_to_the_step(service_bounds: None) -> None:
    """The parts of a step stay within the step's bound, which stays under about 3 s."""
    s = _settings_fields()
    assert s["db_step_seconds"] <= 3.0
    for part in ("db_connect_seconds", "db_pool_wait_seconds"):
        assert s[part] < s["db_step_seconds"], part
    assert s["db_statement_timeout_ms"] / 1000 < s["db_step_seconds"]
    assert s["db_lock_timeout_ms"] < s["db_statement_timeout_ms"]
