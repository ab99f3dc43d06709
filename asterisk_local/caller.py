"""A real SIP call to a local Asterisk with SIPp: key presses as RFC 4733 events.

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


def wait_for_bye(ms: int, label: str) -> str:
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
            actions.append(wait_for_bye(key_group_ms(step.keys, tone_ms), f"step{n}"))
        elif step.seconds > 0:
            actions.append(wait_for_bye(round(step.seconds * 1000), f"step{n}"))
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


def udp_port_free(port: int) -> bool:
    """Whether UDP `port` on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free right now (the caller's media port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
