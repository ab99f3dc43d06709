"""A test agent phone: SIPp answering the agent queue's call on a fixed loopback port.

Used by the end-to-end, fault and deploy tests; the caller side is
`asterisk_local.caller.place_call` (also behind `ivr12333 call`).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asterisk_local.caller import free_udp_port, udp_port_free, wait_for_bye

__all__ = ["AgentCall", "AgentPhone", "free_tcp_port", "free_udp_port"]

AGENT_SCENARIO = Path(__file__).resolve().parent / "sipp" / "agent.xml"
PAUSE_MARKER = "<!-- PAUSE -->"


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for FastAGI)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class AgentCall:
    """What an agent's test phone saw."""

    answered: bool
    # Headers of the INVITE the phone got (names lower-case), e.g. "x-ivr-call-id".
    invite_headers: dict[str, str]
    ended_by: Literal["agent", "far-end", "none"]
    sipp_exit: int


class AgentPhone:
    """A test agent phone: SIPp answering one call on 127.0.0.1:`port`, in the background.

    Matches an `Agent(name, port=port)` of `asterisk_local.instance.up`. Talks `talk_s`
    seconds after answering, then hangs up. Use as a context manager; `result()` waits for the call.
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
        wait = wait_for_bye(round(self.talk_s * 1000), "talked")
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
        while time.monotonic() < deadline and udp_port_free(self.port):
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
