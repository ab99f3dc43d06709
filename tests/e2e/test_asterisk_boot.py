"""Asterisk 22 with the project's dialplan: it loads, it apologises when no FastAGI server
answers, it hands calls to a FastAGI server with the caller's keys, and it passes the
handler's notes to the agent's phone."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import chinese_calendar
import pytest

from asterisk_local import instance as local
from asterisk_local.logscan import config_problems
from backend.settings import get_settings
from dialplan import hours, render
from ivr import contract
from tests import sip_phones
from tests.e2e.conftest import SHANGHAI, E2EAsterisk

pytestmark = pytest.mark.e2e


# --- a FastAGI stub ------------------------------------------------------------------------


class AgiSession:
    """One FastAGI connection from Asterisk, seen from the server side."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rw", encoding="utf-8", newline="\n")
        self.env: dict[str, str] = {}
        while True:
            line = self._file.readline()
            if not line or not line.strip():
                break
            key, _, value = line.rstrip("\n").partition(": ")
            self.env[key] = value

    def command(self, text: str) -> str:
        """Sends one AGI command; returns the `200 result=...` reply line."""
        self._file.write(text + "\n")
        self._file.flush()
        while True:
            line = self._file.readline()
            if not line:
                raise ConnectionError(f"Asterisk closed the connection after {text!r}")
            if line.startswith("HANGUP"):  # FastAGI's hang-up notice; a reply follows
                continue
            return line.rstrip("\n")

    def close(self) -> None:
        # The file object holds the socket open; Asterisk ends the AGI only on EOF.
        self._file.close()
        self._sock.shutdown(socket.SHUT_RDWR)


class FastAgiStub:
    """A raw TCP FastAGI server on 127.0.0.1:`port` running `script` for each call."""

    def __init__(self, port: int, script: Callable[[AgiSession], None]) -> None:
        self.sessions: list[AgiSession] = []
        self.errors: list[BaseException] = []
        self._script = script
        self._server = socket.create_server(("127.0.0.1", port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FastAgiStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(30)
                session = AgiSession(conn)
                self.sessions.append(session)
                try:
                    self._script(session)
                except BaseException as exc:
                    self.errors.append(exc)
                finally:
                    session.close()


def reply_result(reply: str) -> str:
    """`200 result=2580 (timeout)` -> `2580`."""
    assert reply.startswith("200 result="), reply
    return reply.split("result=", 1)[1].split(" ", 1)[0]


def prompt_seconds(root: Path, name: str) -> float:
    """Length of an installed prompt (0 when it is not installed)."""
    folder = root / "usr/share/asterisk/sounds/zh/ivr12333"
    for ext, rate in (("sln16", 32000), ("sln", 16000), ("ulaw", 8000), ("alaw", 8000)):
        path = folder / f"{name}.{ext}"
        if path.exists():
            return path.stat().st_size / rate
    return 0.0


def shanghai(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)


def _days(year: int, want: Callable[[dt.date], bool]) -> list[dt.date]:
    start = dt.date(year, 1, 1)
    days = (start + dt.timedelta(days=n) for n in range(366))
    return [d for d in days if d.year == year and want(d)]


def calendar_year() -> int:
    year = dt.datetime.now(SHANGHAI).year
    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        pytest.skip(f"chinese_calendar does not know {year}")
    return year


# --- (a) the configuration loads -----------------------------------------------------------


def test_dialplan_uses_the_contracts_names() -> None:
    text = (Path(render.__file__).parent / "extensions.conf").read_text(encoding="utf-8")
    for name in (contract.VAR_NEXT, contract.VAR_AGENT_REASON, contract.VAR_CARD_MASKED):
        assert "${" + name + "}" in text, name
    assert "__" + contract.VAR_CALL_ID + "=" in text
    for value in (contract.NEXT_AGENT, contract.NEXT_HANGUP):
        assert f'"{value}"' in text, value
    for script in (contract.SCRIPT_MAIN, contract.SCRIPT_CHANGE_PIN, contract.SCRIPT_REPORT_LOSS):
        assert f"1({script})" in text, script
    assert f"Playback({contract.SOUNDS_SUBDIR}/service-unavailable)" in text


def test_every_configuration_file_loads(e2e_asterisk: E2EAsterisk) -> None:
    # up() refused to start if the log had shown a parse error; check the log ourselves too.
    assert config_problems(e2e_asterisk.instance.log_text()) == []

    dialplan = e2e_asterisk.cli("dialplan show from-pstn")
    for exten in ("'12333'", "'123331'", "'123332'"):
        assert exten in dialplan
    for context in ("ivr-entry", "ivr-agi", "ivr-fallback", "ivr-agent", "ivr-agent-leg"):
        assert "-= " in e2e_asterisk.cli(f"dialplan show {context}"), context

    settings = get_settings()
    plan = hours.build_plan(settings.office_sessions, settings.timezone)
    calendar = e2e_asterisk.cli("dialplan show ivr-calendar")
    assert all(f"'{day:%Y%m%d}'" in calendar for day in plan.exceptions)

    agi_servers = e2e_asterisk.cli("dialplan show globals")
    first, second = e2e_asterisk.agi_ports
    assert f"IVR_AGI_SERVERS=127.0.0.1:{first}&127.0.0.1:{second}" in agi_servers

    for module in ("res_agi.so", "app_queue.so", "res_pjsip.so", "res_musiconhold.so"):
        shown = e2e_asterisk.cli(f"module show like {module}")
        assert "Running" in shown, shown
    endpoints = e2e_asterisk.cli("pjsip show endpoints")
    assert "test-caller" in endpoints and "agent1" in endpoints
    transports = e2e_asterisk.cli("pjsip show transports")
    assert f"127.0.0.1:{e2e_asterisk.sip_port}" in transports
    queue = e2e_asterisk.cli("queue show ivr12333-agents")
    assert "PJSIP/agent1" in queue
    assert "ivr12333" in e2e_asterisk.cli("moh show classes")


@pytest.mark.parametrize(
    ("file", "typo"),
    [
        ("extensions.conf", ("[ivr-agent]", "[ivr-agent")),
        ("pjsip.conf", ("dtmf_mode = rfc4733", "dtmf_mode = rfc4773")),
        ("queues.conf", ("strategy = rrmemory", "strategy = rrmemroy")),
    ],
)
def test_a_typo_in_the_configuration_stops_asterisk(
    e2e_asterisk: E2EAsterisk, file: str, typo: tuple[str, str]
) -> None:
    setup = render.Setup(
        agi_servers=("127.0.0.1:1",), sip_port=sip_phones.free_udp_port(), agents=()
    )
    text = render.render(setup)[file]
    assert typo[0] in text
    name = f"e2e-typo-{os.getpid()}"
    try:
        with pytest.raises(local.AsteriskError, match="configuration problems"):
            local.up(
                ["127.0.0.1:1"],
                setup.sip_port,
                agents=False,
                instance=name,
                overrides={file: text.replace(typo[0], typo[1], 1)},
            )
        assert local.status(name) is None
    finally:
        local.down(name, purge=True)


# --- (b) no FastAGI server: an apology, never silence --------------------------------------


def _played(root: Path, name: str) -> str:
    """The PLAYBACKSTATUS a prompt gets: FAILED when the prompts are not built yet."""
    return "SUCCESS" if prompt_seconds(root, name) > 0 else "FAILED"


def test_no_fastagi_server_out_of_hours_apologises_and_hangs_up(e2e_asterisk: E2EAsterisk) -> None:
    year = calendar_year()
    holiday = _days(year, lambda d: d.weekday() < 5 and not chinese_calendar.is_workday(d))[0]
    e2e_asterisk.set_clock(shanghai(holiday, 10))
    try:
        trace = e2e_asterisk.call("wait:45", timeout=60)
    finally:
        e2e_asterisk.set_clock(None)

    result = trace.result
    assert result.answered
    assert result.ended_by == "far-end", result.summary()
    assert result.talk_s is not None and result.talk_s < 40
    # Both FastAGI servers were tried, then the apology, the hours and a goodbye.
    first, second = e2e_asterisk.agi_ports
    assert f"FastAGI 127.0.0.1:{first}/main gave FAILURE" in trace.log
    assert f"FastAGI 127.0.0.1:{second}/main gave FAILURE" in trace.log
    root = e2e_asterisk.instance.root
    assert trace.whats() == [
        "start main",
        "agi failed",
        "fallback",
        f"apology {_played(root, 'service-unavailable')}",
        "office-hours closed",
        f"agent-hours {_played(root, 'agent-hours')}",
        f"goodbye {_played(root, 'goodbye')}",
    ]
    start, fallback = trace.event("start"), trace.event("fallback")
    assert start is not None and fallback is not None
    assert (fallback.at - start.at).total_seconds() < 5


def test_no_fastagi_server_in_office_hours_queues_then_apologises(
    e2e_asterisk: E2EAsterisk,
) -> None:
    # Nobody answers the agent phone (nothing listens on its port): the queue's time limit
    # sends the caller to an apology and a goodbye (ivr12333/queue-timeout says both).
    year = calendar_year()
    workday = _days(year, lambda d: d.weekday() < 5 and chinese_calendar.is_workday(d))[0]
    e2e_asterisk.set_clock(shanghai(workday, 10))
    try:
        with e2e_asterisk.detailed_log() as detail:
            trace = e2e_asterisk.call("wait:60", timeout=80)
    finally:
        e2e_asterisk.set_clock(None)
    assert trace.result.ended_by == "far-end", trace.result.summary()
    assert [e.split()[0] for e in trace.whats()] == [
        "start",
        "agi",
        "fallback",
        "apology",
        "office-hours",
        "queue",
        "queue-left",
        "queue-timeout",
    ]
    assert "office-hours open" in trace.whats()
    assert "queue-left TIMEOUT" in trace.whats()
    # The caller waited to the project's hold music, not to silence.
    assert "Started music on hold, class 'ivr12333'" in detail.read_text(errors="replace")


# --- (c) a FastAGI server gets the call and the caller's keys ------------------------------


def test_fastagi_stub_gets_the_call_and_the_keys(e2e_asterisk: E2EAsterisk) -> None:
    got: dict[str, str] = {}

    def script(agi: AgiSession) -> None:
        got["playback"] = agi.command("EXEC Playback ivr12333/welcome")
        got["keys"] = reply_result(agi.command("GET DATA silence/1 10000 8"))
        agi.command("SET VARIABLE IVR_NEXT hangup")
        agi.command("EXEC Playback ivr12333/goodbye")

    # Only the second address listens: the dialplan must move on from the first.
    first, second = e2e_asterisk.agi_ports
    welcome = prompt_seconds(e2e_asterisk.instance.root, "welcome")
    with FastAgiStub(second, script) as stub:
        trace = e2e_asterisk.call(f"wait:{welcome + 2:.1f} 2580*7# wait:20", timeout=60)
    assert not stub.errors, stub.errors
    assert len(stub.sessions) == 1
    env = stub.sessions[0].env
    # The AGI runs in the dialplan's FastAGI subroutine; the dialled number is the DNID.
    assert env["agi_network_script"] == "main", env
    assert env["agi_dnid"] == "12333", env
    assert (env["agi_context"], env["agi_extension"]) == ("ivr-agi", "s"), env
    assert env["agi_language"] == "zh", env
    assert got["playback"].startswith("200 result=0")
    assert got["keys"] == "2580*7"
    assert trace.result.ended_by == "far-end", trace.result.summary()
    assert f"FastAGI 127.0.0.1:{first}/main gave FAILURE" in trace.log
    assert trace.whats() == ["start main", "agi success hangup"]
    # The keys stay out of Asterisk's log.
    assert "2580" not in trace.log


# --- the agent's screen: the handler's notes reach the agent's channel ---------------------


def test_agent_leg_carries_the_handlers_notes(e2e_asterisk: E2EAsterisk) -> None:
    call_id = f"e2e-{time.time_ns()}"

    def script(agi: AgiSession) -> None:
        agi.command(f"SET VARIABLE IVR_CALL_ID {call_id}")
        agi.command("SET VARIABLE IVR_AGENT_REASON caller-asked")
        agi.command('SET VARIABLE IVR_CARD_MASKED "A****5678"')
        agi.command("SET VARIABLE IVR_NEXT agent")

    first, _ = e2e_asterisk.agi_ports
    with (
        FastAgiStub(first, script) as stub,
        sip_phones.AgentPhone(e2e_asterisk.agent_port, talk_s=1.5, timeout=40) as phone,
    ):
        trace = e2e_asterisk.call("wait:30", timeout=45)
        agent = phone.result(timeout=20)
    assert not stub.errors, stub.errors
    assert agent.answered
    assert agent.invite_headers.get("x-ivr-call-id") == call_id
    assert agent.invite_headers.get("x-ivr-reason") == "caller-asked"
    assert agent.invite_headers.get("x-ivr-card") == "A****5678"
    assert agent.ended_by == "agent"
    assert trace.result.ended_by == "far-end", trace.result.summary()
    assert trace.whats() == ["start main", "agi success agent", f"queue {call_id} caller-asked"]
    # The variables were inherited by the agent's channel itself.
    legs = [e for e in trace.events if e.what == "agent-leg"]
    assert [(e.channel.startswith("PJSIP/agent1-"), e.detail) for e in legs] == [(True, call_id)]


# --- office hours: China's calendar, not just Monday to Friday -----------------------------


def _office_hours_verdict(e2e_asterisk: E2EAsterisk, at: dt.datetime) -> str:
    e2e_asterisk.set_clock(at)
    start = e2e_asterisk.instance.log_size()
    e2e_asterisk.cli("channel originate Local/hours@ivr-selftest application Wait 0")
    needle = f"office-hours {int(at.timestamp())} "
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in e2e_asterisk.instance.log_text(start).splitlines():
            if needle in line and "Executing" not in line:
                return line.split(needle, 1)[1].strip()
        time.sleep(0.05)
    raise AssertionError(f"no verdict for {at}")


def test_office_hours_follow_the_chinese_calendar(e2e_asterisk: E2EAsterisk) -> None:
    year = calendar_year()
    makeup = _days(year, lambda d: d.weekday() >= 5 and chinese_calendar.is_workday(d))
    holidays = _days(year, lambda d: d.weekday() < 5 and not chinese_calendar.is_workday(d))
    plain_weekdays = _days(year, lambda d: d.weekday() < 5 and chinese_calendar.is_workday(d))
    sundays = _days(year, lambda d: d.weekday() == 6 and not chinese_calendar.is_workday(d))
    first, last = get_settings().office_sessions[0][0], get_settings().office_sessions[-1][1]
    weekday = plain_weekdays[len(plain_weekdays) // 2]
    cases = [
        (shanghai(weekday, first.hour, first.minute), "open"),
        (shanghai(weekday, first.hour, first.minute) - dt.timedelta(minutes=1), "closed"),
        (shanghai(weekday, last.hour, last.minute) - dt.timedelta(minutes=1), "open"),
        (shanghai(weekday, last.hour, last.minute), "closed"),
        (shanghai(sundays[0], 10), "closed"),
    ]
    if makeup:
        cases.append((shanghai(makeup[0], 10), "open"))
    if holidays:
        cases.append((shanghai(holidays[-1], 10), "closed"))
    try:
        verdicts = [(at, _office_hours_verdict(e2e_asterisk, at)) for at, _want in cases]
    finally:
        e2e_asterisk.set_clock(None)
    assert verdicts == cases
