"""Asterisk-side faults through real Asterisk 22, real SIPp calls and real FastAGI servers.

A FastAGI server SIGKILLed in the middle of calls, Asterisk restarted under a running
server, and each way the first of the two FastAGI servers can fail to take a call.

What a caller hears is read off the wire: every RTP packet Asterisk sends to the caller's
port is matched frame by frame against the prompt files (Asterisk sends the bytes of the
.ulaw files as they are), so the tests name the prompts heard, in order, and measure the
longest silence (no sound to the caller and no key from them), not only what the logs say.
Reading the loopback interface takes root, which these tests need for Asterisk anyway.

What they show about the dialplan's failover ([ivr-agi] in dialplan/extensions.conf): a
server that dies mid-call is noticed at once (Asterisk watches the FastAGI socket while a
prompt plays or it waits for keys) and ends the AGI with SUCCESS and no IVR_NEXT, so the
caller gets the one apology and the fallback, never the flow again on the other server;
only a server that never had the call (refused, unreachable, or answering FAILURE before
any command) is followed by the next one.

The figures each test measured are printed (`pytest -s`) as lines starting with `figures:`
and added to this run's fault figures file (tests/faults/conftest.py, FIGURES_FILE).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asterisk_local import caller
from asterisk_local import instance as local
from asterisk_local.install import SOUNDS_DIR
from backend.logsetup import read_announcement
from ivr.agi.bridge import FlowGreenlet
from ivr.scripts import SCRIPTS
from ivr.server import AgiServer
from tests.conftest import APP_LOG, ROOT, IssuedCard, make_pin
from tests.e2e.conftest import E2EAsterisk, Event, parse_events, running_asterisk
from tests.faults import ledger
from tests.faults.conftest import FIGURES_FILE
from tests.flows.helpers import pin_works

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

Issue = Callable[..., Awaitable[IssuedCard]]

IVR12333 = str(ROOT / ".venv" / "bin" / "ivr12333")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
OFFICE_OPEN = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)  # a Friday morning
EVENING = dt.datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
# Audio that is no prompt of ours: the hold music in the queue.
MUSIC = "(music)"
FRAME = 160  # 20 ms of 8 kHz ulaw: what Asterisk reads from a file and sends at a time
# A stretch shorter than this is a frame or two at a prompt's edge, not something heard.
MIN_FRAMES = 5
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def figures(label: str, **values: object) -> None:
    """One line of measured figures, for the test's output."""
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    print(f"figures: {label}: {shown}")


def record_fault(
    fault: str,
    heard: dict[str, int],
    longest_silence_s: float,
    recovery_s: float | None,
    half_written: int | None,
    **notes: object,
) -> None:
    """Adds one fault's figures to this run's figures file, beside the database faults'."""
    summary = {
        "fault": fault,
        "calls": sum(heard.values()),
        "heard": heard,
        "longest_silence_s": round(longest_silence_s, 3),
        "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        "half_written_rows": half_written,
        **notes,
    }
    print("figures:", json.dumps(summary, ensure_ascii=False))
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else []
    found = [f for f in found if f.get("fault") != fault] + [summary]
    FIGURES_FILE.write_text(json.dumps(found, ensure_ascii=False, indent=1))


# -- the wire ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    at: float  # the kernel's receive time, seconds since the epoch
    src: int
    dst: int
    payload_type: int
    payload: bytes


def _rtp(frame: bytes, at: float) -> Packet | None:
    """The RTP packet in a loopback frame (Ethernet header, IPv4, UDP), or None."""
    if frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    if len(ip) < 20 or ip[9] != socket.IPPROTO_UDP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    src, dst = struct.unpack_from("!HH", ip, ihl)
    rtp = ip[ihl + 8 :]
    # SIP and everything else on UDP here fail the version check (their first byte is text).
    if len(rtp) < 12 or rtp[0] >> 6 != 2:
        return None
    return Packet(at, src, dst, rtp[1] & 0x7F, bytes(rtp[12 + 4 * (rtp[0] & 0x0F) :]))


class Wire:
    """Every RTP packet on the loopback interface while it is open (a packet socket)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        # Kernel receive times: this thread may run late on a busy machine, the clock not.
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._packets: list[Packet] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wire", daemon=True)

    def __enter__(self) -> Wire:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _run(self) -> None:
        space = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                frame, ancillary, _flags, address = self._sock.recvmsg(65535, space)
            except TimeoutError:
                continue
            if address[2] == socket.PACKET_OUTGOING:
                continue  # the loopback shows each packet going out and coming in
            at = time.time()
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanoseconds = struct.unpack_from("qq", data)
                    at = seconds + nanoseconds / 1e9
            packet = _rtp(frame, at)
            if packet is not None:
                with self._lock:
                    self._packets.append(packet)

    def heard(self, media_port: int, prompts: Prompts) -> Heard:
        """What the caller on `media_port` heard, and when they pressed keys."""
        with self._lock:
            packets = list(self._packets)
        sound = [p for p in packets if p.dst == media_port and p.payload_type in (0, 8)]
        keys = [p.at for p in packets if p.src == media_port]
        return Heard(_stretches(sound, prompts), tuple(p.at for p in sound), tuple(sorted(keys)))


class Prompts:
    """The 20 ms frames of every prompt file, to name what the caller heard."""

    def __init__(self, folder: Path) -> None:
        self.frames: dict[bytes, set[tuple[str, int]]] = {}
        for path in sorted(folder.glob("*.ulaw")):
            data = path.read_bytes()
            for n in range(len(data) // FRAME):
                self.frames.setdefault(data[n * FRAME : (n + 1) * FRAME], set()).add((path.stem, n))


@dataclass(frozen=True, slots=True)
class Stretch:
    """One prompt (or hold music) heard without a break."""

    prompt: str
    start: float
    end: float


@dataclass
class _Open:
    prompt: str
    start: float
    end: float
    first: int
    last: int
    frames: int = 1


def _stretches(sound: Sequence[Packet], prompts: Prompts) -> tuple[Stretch, ...]:
    found: list[_Open] = []
    for packet in sound:
        candidates = prompts.frames.get(packet.payload)
        if candidates is None:
            name, index = MUSIC, 0
        elif len(candidates) == 1:
            ((name, index),) = candidates
        else:
            # A frame several places share (silence): part of whatever is playing.
            if found:
                found[-1].end = packet.at
                found[-1].frames += 1
            continue
        current = found[-1] if found else None
        if current and current.prompt == name and (name == MUSIC or index > current.last):
            current.end, current.last = packet.at, index
            current.frames += 1
        else:
            found.append(_Open(name, packet.at, packet.at, index, index))
    kept: list[_Open] = []
    for piece in found:
        if piece.frames < MIN_FRAMES:
            continue
        before = kept[-1] if kept else None
        # The same prompt on both sides of a dropped scrap, and not started again: one.
        if (
            before
            and before.prompt == piece.prompt
            and (piece.prompt == MUSIC or piece.first > before.last)
        ):
            before.end, before.last = piece.end, piece.last
        else:
            kept.append(piece)
    return tuple(Stretch(k.prompt, k.start, k.end) for k in kept)


@dataclass(frozen=True)
class Heard:
    stretches: tuple[Stretch, ...]
    sound: tuple[float, ...]  # when each packet of sound reached the caller
    keys: tuple[float, ...]  # when each packet of the caller's keys left

    def prompts(self, since: float = 0.0) -> list[str]:
        """The prompts (and hold music) heard, in order, from `since`."""
        return [s.prompt for s in self.stretches if s.end >= since]

    def start_of(self, prompt: str, since: float = 0.0) -> float | None:
        return next(
            (s.start for s in self.stretches if s.prompt == prompt and s.end >= since), None
        )

    def first_sound(self) -> float | None:
        return self.sound[0] if self.sound else None

    def silence(self, since: float, until: float | None = None) -> float:
        """The longest time from `since` to `until` (default: the last sound) in which the
        caller heard nothing and pressed no key."""
        end = until if until is not None else (self.sound[-1] if self.sound else since)
        moments = sorted(t for t in (*self.sound, *self.keys) if since <= t <= end)
        longest, last = 0.0, since
        for t in [*moments, end]:
            longest, last = max(longest, t - last), t
        return round(longest, 3)


# -- calls ---------------------------------------------------------------------------------


@dataclass
class Placed:
    """A SIPp call and the port its audio came to."""

    label: str
    result: caller.CallResult
    media_port: int
    placed_at: float


def place(asterisk: E2EAsterisk, label: str, number: str, keys: str, limit: float) -> Placed:
    """Places one call (blocking: run it in a thread) with a media port of its own."""
    media_port = caller.free_udp_port()
    placed_at = time.time()
    result = caller.place_call(
        number, keys, sip_port=asterisk.sip_port, timeout=limit, media_port=media_port
    )
    return Placed(label, result, media_port, placed_at)


def dial(
    asterisk: E2EAsterisk, label: str, number: str, keys: str, limit: float = 90
) -> asyncio.Task[Placed]:
    """The call in a thread of its own: the event loop goes on serving FastAGI meanwhile."""
    return asyncio.ensure_future(asyncio.to_thread(place, asterisk, label, number, keys, limit))


def events_by_channel(asterisk: E2EAsterisk, since: int) -> dict[str, list[Event]]:
    """The dialplan's ivr-event lines since byte `since`, per channel."""
    channels: dict[str, list[Event]] = {}
    for event in parse_events(asterisk.instance.log_text(since)):
        channels.setdefault(event.channel, []).append(event)
    return channels


def whats(events: Sequence[Event]) -> list[str]:
    return [f"{e.what} {e.detail}".strip() for e in events]


async def channel_of(asterisk: E2EAsterisk, since: int, start: str, within: float = 20) -> str:
    """Waits for the dialplan's `start <script>` line; returns the call's channel."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for channel, events in events_by_channel(asterisk, since).items():
            if f"start {start}" in whats(events):
                return channel
        await asyncio.sleep(0.05)
    raise AssertionError(f"no call started {start} within {within} s")


def epoch(at: dt.datetime, near: float) -> float:
    """Asterisk's log time as seconds since the epoch (its zone is the root's, in whole
    quarter hours from ours: `near`, a moment close to it, tells which)."""
    naive = at.replace(tzinfo=dt.UTC).timestamp()
    return naive - round((naive - near) / 900) * 900


def warnings_about(asterisk: E2EAsterisk, since: int, channel: str) -> list[str]:
    return [
        line
        for line in asterisk.instance.log_text(since).splitlines()
        if "WARNING" in line and channel in line
    ]


# -- FastAGI servers -----------------------------------------------------------------------


class AgiProcess:
    """`ivr12333 agi serve` in a process of its own, with its output in a file of its own."""

    def __init__(self, port: int, folder: Path, name: str) -> None:
        self.port = port
        self.log_path = folder / f"{name}.log"
        self.out_path = folder / f"{name}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> AgiProcess:
        env = {**os.environ, "IVR_LOG_FILE": str(self.log_path)}
        env.pop("IVR_NOW_OVERRIDE", None)
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [IVR12333, "agi", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not any(
            read_announcement(line, "listening") for line in self.out_path.read_bytes().splitlines()
        ):
            assert self.proc.poll() is None, self.out_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "the FastAGI server did not come up"
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> float:
        """SIGKILL: no drain, no goodbye, sockets closed by the kernel. Returns when."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        at = time.time()
        self.proc.wait(timeout=10)
        return at

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(raw))
        return lines

    def calls(self) -> set[str]:
        """Call ids this server logged anything about."""
        return {str(line["call_id"]) for line in self.log() if line.get("call_id")}


@contextlib.contextmanager
def agi_processes(*servers: AgiProcess) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asterisk() -> Iterator[E2EAsterisk]:
    """An Asterisk of this module's own: the restart test restarts it."""
    with running_asterisk("faults") as instance:
        yield instance


@pytest.fixture(scope="module")
def prompts(asterisk: E2EAsterisk) -> Prompts:
    return Prompts(asterisk.instance.root / SOUNDS_DIR / "ivr12333")


@pytest.fixture
def wire() -> Iterator[Wire]:
    with Wire() as opened:
        yield opened


@pytest.fixture
def clock(asterisk: E2EAsterisk) -> Iterator[Callable[[dt.datetime], None]]:
    """The moment the dialplan's office-hours check believes it is."""
    yield asterisk.set_clock
    asterisk.set_clock(None)


def entry(text: str) -> str:
    """Keys for one entry, then time for the server to ask the next question."""
    return f"{text.replace('X', '*')}# wait:2"


# -- 1. a FastAGI server killed mid-call ---------------------------------------------------


def after_kill(
    label: str, placed: Placed, heard: Heard, events: list[str], killed_at: float
) -> tuple[list[str], float]:
    """What the caller of a killed call heard from the prompt cut by the kill on; checks
    the apology came at once and the dialplan took the call back once, and prints figures."""
    # The prompt playing when the server died stops with it (Asterisk watches the socket
    # during STREAM FILE and GET DATA): a stretch ending at the kill is part of the story.
    after = [s for s in heard.stretches if s.end >= killed_at - 0.1]
    apology = heard.start_of("service-unavailable", killed_at - 0.1)
    assert apology is not None, [s.prompt for s in after]
    silence = heard.silence(killed_at)
    figures(
        f"killed mid-call ({label})",
        ended=placed.result.ended_by,
        heard="+".join(s.prompt for s in after),
        apology_after_kill_s=round(apology - killed_at, 3),
        longest_silence_after_kill_s=silence,
        keys_after_kill_s=round(max(heard.keys, default=killed_at) - killed_at, 2),
    )
    assert apology - killed_at < 0.3
    # AGISTATUS=SUCCESS without IVR_NEXT: the dialplan's fallback, once; never a new start.
    assert events[1:3] == ["agi success", "fallback"], events
    assert [e.split()[0] for e in events].count("start") == 1, events
    assert placed.result.ended_by == "far-end", placed.result.summary()
    return [s.prompt for s in after], silence


async def test_fastagi_server_killed_mid_call(
    asterisk: E2EAsterisk,
    db: str,
    issue: Issue,
    wire: Wire,
    prompts: Prompts,
    clock: Callable[[dt.datetime | None], None],
    tmp_path: Path,
) -> None:
    """The first FastAGI server is SIGKILLed with three calls on it: one hearing the
    welcome, one keying a card number, one waiting for keys after its entry prompt. Each
    hears the dialplan's one apology at once, then the queue (office hours), never silence
    and never the flow again from its start; a call placed right after the kill is served by
    the second server and changes a PIN. Out of hours, a call on a new first server killed
    mid-welcome hears the apology, the hours and goodbye. Nothing is half-written."""
    card, other = await issue(), await issue()
    new_pin = make_pin()
    first = AgiProcess(asterisk.agi_ports[0], tmp_path, "agi-first")
    second = AgiProcess(asterisk.agi_ports[1], tmp_path, "agi-second")
    again = AgiProcess(asterisk.agi_ports[0], tmp_path, "agi-first-again")
    with agi_processes(first, second, again):
        first.start()
        second.start()
        before = await ledger.snapshot()

        # Office hours: three calls in progress when the first server dies.
        clock(OFFICE_OPEN)
        since = asterisk.instance.log_size()
        # The entry prompt lasts 3.8 s, then Asterisk waits 6 s for keys: the kill comes
        # about 7 s into this call, in that wait, when the caller hears nothing.
        calls = [dial(asterisk, "silent", "123331", "wait:45")]
        channels = {"silent": await channel_of(asterisk, since, "change-pin")}
        await asyncio.sleep(5.5)
        calls += [
            dial(asterisk, "welcome", "12333", "wait:45"),
            dial(asterisk, "keying", "123332", f"wait:1 {other.digits}# wait:45"),
        ]
        channels["welcome"] = await channel_of(asterisk, since, "main")
        channels["keying"] = await channel_of(asterisk, since, "report-loss")
        # 1.5 s into the welcome (2.8 s) and into keying the card number (3 s).
        await asyncio.sleep(1.5)
        killed_at = first.kill()
        fresh = dial(
            asterisk,
            "new",
            "123331",
            " ".join(
                [
                    "wait:2",
                    entry(card.digits),
                    entry("123456"),
                    entry(card.id_number),
                    entry(new_pin),
                    entry(new_pin),
                    "wait:6",
                ]
            ),
        )
        placed = {p.label: p for p in await asyncio.gather(*calls, fresh)}
        await asyncio.sleep(0.3)  # Asterisk's last lines come just after the BYE
        events = events_by_channel(asterisk, since)
        heard = {label: wire.heard(p.media_port, prompts) for label, p in placed.items()}

        queue = ["service-unavailable", MUSIC, "queue-timeout"]
        silences = []
        for label, cut in (("welcome", "welcome"), ("keying", None), ("silent", None)):
            told, silence = after_kill(
                label, placed[label], heard[label], whats(events[channels[label]]), killed_at
            )
            # Queue announcements (the caller's position) may come between music.
            plain = [p for p in told if not p.startswith("queue-") or p == "queue-timeout"]
            plain = [p for n, p in enumerate(plain) if n == 0 or plain[n - 1] != p]
            assert plain == ([cut] if cut else []) + queue, told
            silences.append(silence)
            assert any(
                e.startswith("queue ") and e.endswith(" ivr-unavailable")
                for e in whats(events[channels[label]])
            )
        # The keys were still going when the server died; the silent caller had heard the
        # end of the entry prompt before it and nothing more until the apology.
        assert max(heard["keying"].keys) > killed_at
        prompt_end = heard["silent"].stretches[0].end
        assert heard["silent"].stretches[0].prompt == "enter-card-number"
        assert prompt_end < killed_at - 0.5
        figures("silent caller", waiting_for_keys_at_kill_s=round(killed_at - prompt_end, 2))

        new = heard["new"]
        recovered = (new.first_sound() or float("inf")) - killed_at
        figures(
            "new call after the kill",
            ended=placed["new"].result.ended_by,
            first_sound_after_kill_s=round(recovered, 3),
            heard="+".join(new.prompts()),
        )
        assert "pin-changed" in new.prompts()
        assert recovered < 1.5
        assert await pin_works(card.digits, card.id_number, new_pin)
        # The second server served the new call and nothing else.
        assert len(second.calls()) == 1, second.calls()

        # Out of hours: a new first server, killed mid-welcome.
        again.start()
        clock(EVENING)
        since = asterisk.instance.log_size()
        late_call = dial(asterisk, "evening", "12333", "wait:40")
        channel = await channel_of(asterisk, since, "main")
        await asyncio.sleep(2.0)
        killed_late = again.kill()
        late = await late_call
        await asyncio.sleep(0.3)
        late_events = whats(events_by_channel(asterisk, since)[channel])
        told, silence = after_kill(
            "out of hours", late, wire.heard(late.media_port, prompts), late_events, killed_late
        )
        assert told == ["welcome", "service-unavailable", "agent-hours", "goodbye"]
        silences.append(silence)
        assert "office-hours closed" in late_events
        assert len(second.calls()) == 1  # not tried for the killed call

    changes = ledger.compare(before, await ledger.snapshot())
    figures(
        "database after the kills",
        half_written=len(changes.half_written),
        pins_changed=changes.pins_changed,
        reports_filed=changes.reports_filed,
        handoffs_noted=changes.handoffs_noted,
    )
    record_fault(
        "FastAGI server SIGKILLed mid-call (real Asterisk, two servers)",
        {
            "in progress, office hours: the apology at once, then the queue": 3,
            "in progress, out of hours: the apology at once, the hours, goodbye": 1,
            "placed after the kill: served by the second server (PIN changed)": 1,
        },
        max(silences),
        recovered,
        len(changes.half_written),
        started_again_on_the_second_server=len(second.calls()) - 1,
    )
    assert changes.half_written == []
    assert (changes.pins_changed, changes.reports_filed) == (1, 0)
    assert not [line for line in second.log() if line.get("level") in ("error", "critical")]


# -- 2. Asterisk restarted under a running FastAGI server ----------------------------------


def live_flow_greenlets() -> int:
    """Call flows started and not finished, in this process."""
    return sum(1 for o in gc.get_objects() if isinstance(o, FlowGreenlet) and o.in_call)


def established(port: int) -> int:
    """TCP connections on 127.0.0.1 to or from `port` still open (either side)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if fields[3] == "01" and port in (local_port, remote_port):  # 01: ESTABLISHED
            count += 1
    return count


async def until(check: Callable[[], bool], within: float) -> bool:
    """Whether `check()` holds within `within` seconds (the event loop runs meanwhile)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def uptime_s(asterisk: E2EAsterisk) -> int | None:
    """Seconds since Asterisk started, or None while it does not answer."""
    with contextlib.suppress(local.AsteriskError, subprocess.TimeoutExpired):
        found = re.search(r"System uptime: (\d+)", asterisk.cli("core show uptime seconds"))
        return int(found.group(1)) if found else None
    return None


def restart(asterisk: E2EAsterisk) -> None:
    """`core restart now`: Asterisk hangs up every call and executes itself again."""
    issued = time.monotonic()
    with contextlib.suppress(local.AsteriskError, subprocess.TimeoutExpired):
        asterisk.cli("core restart now")  # the console may lose Asterisk before it answers
    while time.monotonic() - issued < local.BOOT_TIMEOUT_S:
        # The old Asterisk may still answer for a moment: wait for one started since.
        up = uptime_s(asterisk)
        if up is not None and up < time.monotonic() - issued + 0.5:
            asterisk.cli("core waitfullybooted")
            return
        time.sleep(0.2)
    raise AssertionError("Asterisk did not come back after core restart now")


async def test_asterisk_restart_leaves_the_fastagi_server_unaffected(
    asterisk: E2EAsterisk, db: str, wire: Wire, prompts: Prompts
) -> None:
    """Asterisk restarted (`core restart now`) with a call in progress on a running FastAGI
    server: the server sees a hang-up, records no error, holds no call, connection or flow
    afterwards, and serves the next call once Asterisk is back."""
    server = AgiServer(SCRIPTS)
    await server.start("127.0.0.1", asterisk.agi_ports[0])
    flows_before = live_flow_greenlets()
    log_from = APP_LOG.stat().st_size
    try:
        since = asterisk.instance.log_size()
        in_progress = dial(asterisk, "restarted", "12333", "wait:30", limit=45)
        await channel_of(asterisk, since, "main")
        await asyncio.sleep(2.0)  # into the welcome
        assert server.active_calls == 1
        restarted_at = time.time()
        await asyncio.to_thread(restart, asterisk)
        back_at = time.time()
        cut = await in_progress
        assert cut.result.ended_by == "far-end", cut.result.summary()  # Asterisk's BYE
        assert await until(lambda: server.active_calls == 0, 10), server.active_calls
        assert asterisk.instance.is_running()  # the same process, executed again
        cut_heard = wire.heard(cut.media_port, prompts)
        ended_after = round(cut_heard.sound[-1] - restarted_at, 3)
        figures(
            "asterisk restarted mid-call",
            call_ended=cut.result.ended_by,
            sound_stopped_after_s=ended_after,
            back_after_s=round(back_at - restarted_at, 2),
            server_calls=server.active_calls,
            server_errors=len(server.errors),
            connections=established(asterisk.agi_ports[0]),
            flows_left=live_flow_greenlets() - flows_before,
        )
        assert not server.errors
        assert server.errors_seen == 0
        assert await until(lambda: established(asterisk.agi_ports[0]) == 0, 5)
        assert live_flow_greenlets() == flows_before

        since = asterisk.instance.log_size()
        following = await dial(asterisk, "after", "12333", "wait:9", limit=30)
        heard = wire.heard(following.media_port, prompts)
        assert heard.prompts()[:2] == ["welcome", "card-menu"], heard.prompts()
        assert following.result.ended_by == "caller"
        assert await until(lambda: server.active_calls == 0, 10)
        figures(
            "next call after the restart",
            heard="+".join(heard.prompts()),
            served=server.calls_served,
            errors=len(server.errors),
            flows_left=live_flow_greenlets() - flows_before,
        )
        assert server.calls_served == 2
        assert not server.errors
        assert live_flow_greenlets() == flows_before
        assert await until(lambda: established(asterisk.agi_ports[0]) == 0, 5)
    finally:
        await server.drain()
    # The server's own log: each call ended as a hang-up, nothing worse.
    with APP_LOG.open("rb") as f:
        f.seek(log_from)
        logged = [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]
    calls = [line for line in logged if str(line.get("event", "")).startswith("call.")]
    assert [line["event"] for line in calls] == ["call.hung_up", "call.hung_up"], calls
    assert not [line for line in logged if line.get("level") in ("error", "critical")]
    record_fault(
        "Asterisk restarted (core restart now) under a running FastAGI server",
        {
            "in progress: hung up by the restart, the server saw a hang-up": 1,
            "placed once Asterisk was back: served by the same server": 1,
        },
        max(h.silence(h.sound[0]) for h in (cut_heard, heard)),
        (heard.first_sound() or float("inf")) - restarted_at,
        None,  # no call reached a database step
        asterisk_back_s=round(back_at - restarted_at, 2),
        server_errors=server.errors_seen,
        calls_connections_flows_left=0,
    )


# -- 3. how the first server fails: refused, unreachable, refusing, dropping ---------------


@contextlib.contextmanager
def unreachable(port: int) -> Iterator[None]:
    """A port whose connection attempts go unanswered, like a host that is down: a
    listener with a full accept queue, so the kernel drops every new SYN."""
    with socket.create_server(("127.0.0.1", port), backlog=0) as listener:
        fillers = []
        try:
            for _ in range(2):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            time.sleep(0.2)
            probe = socket.socket()
            probe.settimeout(0.5)
            with pytest.raises(TimeoutError), probe:
                probe.connect(("127.0.0.1", port))
            yield
        finally:
            for filler in fillers:
                filler.close()
            listener.close()


@contextlib.asynccontextmanager
async def taking_calls(port: int, *lines: bytes) -> AsyncIterator[None]:
    """A FastAGI listener that reads Asterisk's environment, sends `lines` one by one (each
    but the last a command: it waits for Asterisk's reply), and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass  # the agi_* lines, up to the blank one
        for n, line in enumerate(lines):
            writer.write(line)
            await writer.drain()
            if n < len(lines) - 1:
                await reader.readline()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        listener.close()
        await listener.wait_closed()


async def test_first_server_failures_and_the_time_to_fail_over(
    asterisk: E2EAsterisk, db: str, wire: Wire, prompts: Prompts, clock: Any
) -> None:
    """With the second server up, a first server that refuses the connection, cannot be
    reached (connect times out after about 2 s; then it is skipped for a while, so the next
    caller does not wait), or takes the connection and answers FAILURE before any command:
    the call goes to the second server, which plays the welcome. A first server that had
    the call and dropped it, or failed later than a connection can take, owns it: the
    caller hears the apology at once, and the second server is not tried (the caller may be
    half-way through a PIN change)."""
    second = AgiServer(SCRIPTS)
    await second.start("127.0.0.1", asterisk.agi_ports[1])
    port = asterisk.agi_ports[0]
    clock(EVENING)

    waits: dict[str, float] = {}

    async def call(label: str, listen_s: float = 3.5) -> tuple[list[str], float, int]:
        served = second.calls_served
        since = asterisk.instance.log_size()
        placed = await dial(asterisk, label, "12333", f"wait:{listen_s}", limit=30)
        await asyncio.sleep(0.3)
        channel = await channel_of(asterisk, since, "main")
        start = events_by_channel(asterisk, since)[channel][0]
        heard = wire.heard(placed.media_port, prompts)
        waited = (heard.first_sound() or float("inf")) - epoch(start.at, placed.placed_at)
        figures(
            f"first server {label}",
            heard="+".join(heard.prompts()),
            silence_before_first_sound_s=round(waited, 3),
            second_server_took_it=second.calls_served - served,
        )
        waits[label] = round(waited, 3)
        return heard.prompts(), waited, second.calls_served - served

    try:
        heard, waited, taken = await call("refuses")
        assert (heard[:1], taken) == (["welcome"], 1)
        assert waited < 0.5

        with unreachable(port):
            heard, waited, taken = await call("unreachable")
            assert (heard[:1], taken) == (["welcome"], 1)
            assert 1.5 < waited < 3.0  # Asterisk's FastAGI connect timeout, 2 s
            heard, waited, taken = await call("unreachable, the next caller")
            assert (heard[:1], taken) == (["welcome"], 1)
            assert waited < 0.5
        # Forget it at once (it would be tried again 10 s after it failed).
        asterisk.cli("dialplan set global IVR_AGI_DOWN_1 0")

        async with taking_calls(port, b"FAILURE\n"):
            heard, waited, taken = await call("answers FAILURE")
        assert (heard[:1], taken) == (["welcome"], 1)
        assert waited < 0.5

        async with taking_calls(port, b""):
            heard, waited, taken = await call("drops the call")
        assert (heard[:1], taken) == (["service-unavailable"], 0)
        assert waited < 0.5

        # The welcome and the card menu (about 8 s), then a failure: well past the 3 s
        # within which the dialplan takes a FAILURE for a server that never had the call.
        welcome = b'STREAM FILE ivr12333/welcome ""\n'
        menu = b'STREAM FILE ivr12333/card-menu ""\n'
        async with taking_calls(port, welcome, menu, b"FAILURE\n"):
            heard, waited, taken = await call("fails mid-call", listen_s=12)
        assert (heard[:3], taken) == (["welcome", "card-menu", "service-unavailable"], 0)
    finally:
        asterisk.cli("dialplan set global IVR_AGI_DOWN_1 0")
        await second.drain()
    assert not second.errors
    record_fault(
        "first FastAGI server failing, the second up (real Asterisk)",
        {
            "refused, unreachable (twice), answered FAILURE: the second server's welcome": 4,
            "took the call and dropped it, or failed mid-call: the apology at once": 2,
        },
        max(waits.values()),
        None,
        None,  # no call reached a database step
        silence_before_first_sound_s=waits,
    )
