"""Real SIP calls to the local Asterisk with SIPp: key presses as RFC 4733 events.

`place_call("12333", "wait:3 2 wait:2 12345678#")` dials, waits, presses keys and hangs up,
unless Asterisk hangs up first, and reports how the call ended. Key groups are never logged:
callers type card numbers and PINs.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog

log = structlog.get_logger(__name__)

SCENARIO = Path(__file__).resolve().parent / "sipp" / "caller.xml"
KEYS_MARKER = "<!-- KEYS -->"
DEFAULT_TONE_MS = 150
_KEY_GROUP = re.compile(r"^[0-9*#A-D]+$")
_LOG_LINE = re.compile(r"^(ANSWERED|REJECTED|FAR_BYE|NEAR_BYE|INVITE) (\d+) (\d+)$")

EndedBy = Literal["caller", "far-end", "rejected", "timeout", "error"]


class CallError(ValueError):
    """The key script is malformed, or SIPp is missing."""


@dataclass(frozen=True)
class Step:
    """One step of a key script: press `keys`, or wait `seconds`."""

    keys: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class CallResult:
    number: str
    answered: bool
    # Who ended the call: the caller's BYE, the far end's BYE, a rejection of the INVITE, or
    # the overall time limit.
    ended_by: EndedBy
    # The final response to the INVITE (200 when answered), and to our BYE if we sent one.
    invite_status: int | None
    bye_status: int | None
    # Seconds from the INVITE to the answer, and from the answer to the end of the call.
    answer_after_s: float | None
    talk_s: float | None
    wall_s: float
    sipp_exit: int
    sipp_output: str = field(repr=False, default="")

    @property
    def far_end_hung_up(self) -> bool:
        return self.ended_by == "far-end"

    def summary(self) -> str:
        parts = [f"call to {self.number}: ended by {self.ended_by}"]
        if self.invite_status is not None:
            parts.append(f"INVITE {self.invite_status}")
        if self.bye_status is not None:
            parts.append(f"BYE {self.bye_status}")
        if self.answer_after_s is not None:
            parts.append(f"answered after {self.answer_after_s:.2f} s")
        if self.talk_s is not None:
            parts.append(f"talk {self.talk_s:.2f} s")
        parts.append(f"wall {self.wall_s:.2f} s")
        return ", ".join(parts)


def parse_keys(script: str) -> list[Step]:
    """`"wait:3 2 wait:0.5 12345678#"` -> steps. Keys: 0-9 * # A-D; waits in seconds."""
    steps = []
    for token in script.split():
        if token.startswith("wait:"):
            try:
                seconds = float(token[5:])
            except ValueError as exc:
                raise CallError(f"bad wait {token!r}") from exc
            if not 0 <= seconds <= 600:
                raise CallError(f"wait {seconds} s out of range 0-600")
            steps.append(Step(seconds=seconds))
        elif _KEY_GROUP.match(token):
            steps.append(Step(keys=token))
        else:
            raise CallError(f"bad key group {token!r}: use 0-9 * # A-D or wait:N")
    return steps


def key_group_ms(keys: str, tone_ms: int) -> int:
    """How long SIPp needs to send a key group; a new group cancels an unfinished one."""
    # Each key takes twice the tone length (tone, then as much silence), plus a lead-in.
    return (len(keys) + 1) * 2 * tone_ms + 100


def _wait_for_bye(ms: int, label: str) -> str:
    # A wait that a far-end BYE cuts short (SIPp matches a BYE only on a receive).
    return (
        f'  <recv request="BYE" timeout="{ms}" ontimeout="{label}" next="farbye"/>\n'
        f'  <label id="{label}"/>'
    )


def render_scenario(steps: list[Step], tone_ms: int = DEFAULT_TONE_MS) -> str:
    actions = []
    for n, step in enumerate(steps, start=1):
        if step.keys:
            actions.append(
                f'  <nop><action><exec play_dtmf="{step.keys},{tone_ms}"/></action></nop>'
            )
            actions.append(_wait_for_bye(key_group_ms(step.keys, tone_ms), f"step{n}"))
        elif step.seconds > 0:
            actions.append(_wait_for_bye(round(step.seconds * 1000), f"step{n}"))
    text = SCENARIO.read_text(encoding="utf-8")
    if KEYS_MARKER not in text:
        raise CallError(f"{SCENARIO} lacks the {KEYS_MARKER} marker")
    return text.replace(f"  {KEYS_MARKER}", "\n".join(actions) or "  <nop/>")


def place_call(
    number: str,
    keys: str = "",
    *,
    sip_port: int = 5060,
    timeout: float = 60.0,
    tone_ms: int = DEFAULT_TONE_MS,
    media_port: int | None = None,
) -> CallResult:
    """Calls `number` at Asterisk on 127.0.0.1:`sip_port`, plays `keys`, and hangs up.

    The far end may hang up first (that ends the call too). `timeout` bounds the whole call;
    a call still going then is reported as ended_by="timeout". `media_port` is the caller's
    RTP port (default: a free one); Asterisk sends the call's audio there.
    """
    if not re.fullmatch(r"[0-9A-Za-z*#+-]{1,32}", number):
        raise CallError(f"bad number {number!r}")
    if shutil.which("sipp") is None:
        raise CallError("sipp is not installed (Debian package sip-tester)")
    steps = parse_keys(keys)
    with tempfile.TemporaryDirectory(prefix="ivr12333-sipp-") as tmp:
        work = Path(tmp)
        scenario = work / "caller.xml"
        scenario.write_text(render_scenario(steps, tone_ms), encoding="utf-8")
        events = work / "events.log"
        command = [
            "sipp",
            f"127.0.0.1:{sip_port}",
            "-sf",
            str(scenario),
            "-s",
            number,
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media_port or free_udp_port()),
            "-trace_logs",
            "-log_file",
            str(events),
            "-timeout",
            f"{max(1, round(timeout))}s",
            "-timeout_error",
            "-nostdin",
        ]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                command,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=timeout + 15,
                check=False,
            )
            exit_code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            exit_code = -9
            output = str(exc.stdout or "")
        wall = time.monotonic() - started
        text = events.read_text(encoding="utf-8") if events.exists() else ""
    result = _result(number, text, exit_code, output, wall)
    log.info(
        "sipp_call_ended",
        number=number,
        key_groups=sum(1 for s in steps if s.keys),
        ended_by=result.ended_by,
        invite_status=result.invite_status,
        wall_s=round(wall, 2),
    )
    return result


def _result(number: str, events: str, exit_code: int, output: str, wall: float) -> CallResult:
    seen: dict[str, tuple[int, int]] = {}
    for line in events.splitlines():
        match = _LOG_LINE.match(line.strip())
        if match:
            seen[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    invite_tick = seen.get("INVITE", (0, 0))[1]
    answered = "ANSWERED" in seen
    answer_tick = seen["ANSWERED"][1] if answered else None
    ended_by: EndedBy
    bye_status = None
    end_tick = None
    if "FAR_BYE" in seen:
        ended_by, end_tick = "far-end", seen["FAR_BYE"][1]
    elif "NEAR_BYE" in seen:
        ended_by, end_tick = "caller", seen["NEAR_BYE"][1]
        bye_status = seen["NEAR_BYE"][0]
    elif "REJECTED" in seen:
        ended_by = "rejected"
    elif exit_code != 0 and "timeout" in output.lower():
        ended_by = "timeout"
    else:
        ended_by = "error" if exit_code != 0 else "timeout"
    if "REJECTED" in seen:
        invite_status: int | None = seen["REJECTED"][0]
    else:
        invite_status = 200 if answered else None
    return CallResult(
        number=number,
        answered=answered,
        ended_by=ended_by,
        invite_status=invite_status,
        bye_status=bye_status,
        answer_after_s=None if answer_tick is None else (answer_tick - invite_tick) / 1000,
        talk_s=None if answer_tick is None or end_tick is None else (end_tick - answer_tick) / 1000,
        wall_s=wall,
        sipp_exit=exit_code,
        sipp_output=output[-4000:],
    )


AGENT_SCENARIO = Path(__file__).resolve().parent / "sipp" / "agent.xml"
PAUSE_MARKER = "<!-- PAUSE -->"


@dataclass(frozen=True)
class AgentCall:
    """What an agent's test phone saw."""

    answered: bool
    # Headers of the INVITE the phone got (names lower-case), e.g. "x-ivr-call-id".
    invite_headers: dict[str, str]
    ended_by: Literal["agent", "far-end", "none"]
    sipp_exit: int


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free right now (for SIP)."""
    return _free_port(socket.SOCK_DGRAM)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for FastAGI)."""
    return _free_port(socket.SOCK_STREAM)


class AgentPhone:
    """A test agent phone: SIPp answering one call on 127.0.0.1:`port`, in the background.

    Matches an `Agent(name, port=port)` of `dialplan.local.up`. Talks `talk_s` seconds after
    answering, then hangs up. Use as a context manager; `result()` waits for the call.
    """

    def __init__(self, port: int, talk_s: float = 1.0, timeout: float = 60.0) -> None:
        self.port = port
        self.talk_s = talk_s
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="ivr12333-agent-")
        self._work = Path(self._tmp.name)
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> AgentPhone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        scenario = self._work / "agent.xml"
        text = AGENT_SCENARIO.read_text(encoding="utf-8")
        wait = _wait_for_bye(round(self.talk_s * 1000), "talked")
        scenario.write_text(text.replace(f"  {PAUSE_MARKER}", wait), encoding="utf-8")
        self._proc = subprocess.Popen(
            [
                "sipp",
                "-sf",
                str(scenario),
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-mp",
                str(free_udp_port()),
                "-m",
                "1",
                "-trace_msg",
                "-message_file",
                str(self._work / "messages.log"),
                "-trace_logs",
                "-log_file",
                str(self._work / "events.log"),
                "-timeout",
                f"{max(1, round(self.timeout))}s",
                "-timeout_error",
                "-nostdin",
            ],
            cwd=self._work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        # SIPp binds its port within a fraction of a second; a call before that would fail.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _udp_port_free(self.port):
            time.sleep(0.05)

    def result(self, timeout: float | None = None) -> AgentCall:
        if self._proc is None:
            raise RuntimeError("the agent phone was not started")
        try:
            code = self._proc.wait(timeout=self.timeout + 10 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            code = -9
        messages = self._read("messages.log")
        events = self._read("events.log")
        ended: Literal["agent", "far-end", "none"] = "none"
        if "AGENT_BYE" in events:
            ended = "agent"
        elif "AGENT_FAR_BYE" in events:
            ended = "far-end"
        return AgentCall(
            answered="AGENT_ANSWERED" in events,
            invite_headers=_first_invite_headers(messages),
            ended_by=ended,
            sipp_exit=code,
        )

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def _read(self, name: str) -> str:
        path = self._work / name
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _first_invite_headers(messages: str) -> dict[str, str]:
    """Headers of the first INVITE in a SIPp message trace."""
    lines = messages.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("INVITE "):
            headers: dict[str, str] = {}
            for header in lines[i + 1 :]:
                if not header.strip():
                    break
                name, sep, value = header.partition(":")
                if sep:
                    headers.setdefault(name.strip().lower(), value.strip())
            return headers
    return {}
