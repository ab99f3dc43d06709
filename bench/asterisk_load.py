"""Real calls through the local Asterisk 22: N concurrent SIPp callers each key a PIN change.

    .venv/bin/python -m bench.asterisk_load --calls 100,200,300 --rate 20
    .venv/bin/python -m bench.asterisk_load --audio --calls 10,30 --rate 5

For each N in `--calls` (rising), N calls are placed at RATE a second to 12333 at a local
Asterisk (instance `bench`, its own SIP port) whose dialplan hands calls to
`ivr12333 agi serve` (`--workers`) on a PostgreSQL of the bench's own (see `bench.flow`).
Each call keys, as RFC 4733 events, the card menu's 2, then its own card's number, PIN, ID
number and a new PIN twice, with the README call's pauses. A call counts when its card's
stored hash matches the new PIN afterwards: every key was recognised and the change was
made. Each step reports the calls changed and failed, the calls SIPp did not count
successful, and the CPU of Asterisk, of the FastAGI server and of SIPp; the run stops at
the first step with a failure.

By default the callers send key events only, no voice (one SIPp process, `-l N -r RATE
-m N`, the keys from its injection file). With `--audio` each caller sends what a phone
sends: one RTP stream from the answer on, 20 ms G.711 packets of quiet noise in which each
key's events take the place of the audio (`bench.rtp_pcap`), written per call to a private
pcap file and played by a SIPp process of its own (`play_pcap_audio`, `-m 1`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.flow import FlowCard, _check_database, _prepare
from bench.processes import ServerProcess, ours_argv

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CALL_TIMEOUT = 180.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Key groups of the right lengths, replaced in the scenario by each call's own values
# from the injection file ([field0] card, [field1] PIN, [field2] ID, [field3] new PIN).
_PLACEHOLDERS = {
    "90000001#": "[field0]",
    "900002#": "[field1]",
    "900000000000000003#": "[field2]",
    "900004#": "[field3]",
}


# The README call's PIN change: the card menu's 2, then card number, PIN, ID number and the
# new PIN twice, each after the prompt it answers has started.
KEY_PLAN = (
    "wait:8 2 wait:2 90000001# wait:2 900002# wait:2 900000000000000003# "
    "wait:2 900004# wait:2 900004# wait:6"
)


def _scenario() -> str:
    """The caller's scenario: the README's PIN change, each call keying its own card.

    The welcome is not interruptible; menus and entry prompts are cut short by a key.
    """
    from asterisk_local.caller import parse_keys, render_scenario

    text = render_scenario(parse_keys(KEY_PLAN))
    for placeholder, field_name in _PLACEHOLDERS.items():
        text = text.replace(f'play_dtmf="{placeholder},', f'play_dtmf="{field_name},')
    return text


# `--audio`: each call's own RTP stream (bench.rtp_pcap), named on SIPp's command line
# (`-key pcap PATH`; SIPp reads the file when it loads the scenario).
_PCAP_ACTION = '  <nop><action><exec play_pcap_audio="[pcap]"/></action></nop>'
# A phone sends until the hang-up: the stream outlasts the plan's last wait.
AUDIO_TAIL_MS = 5000


def _audio_scenario() -> str:
    """The same plan with the keys in the call's stream: each key group becomes a wait as
    long as SIPp's play_dtmf takes for it, and the stream plays from the answer on."""
    from asterisk_local.caller import (
        DEFAULT_TONE_MS,
        Step,
        key_group_ms,
        parse_keys,
        render_scenario,
    )

    waits = [
        Step(seconds=key_group_ms(step.keys, DEFAULT_TONE_MS) / 1000) if step.keys else step
        for step in parse_keys(KEY_PLAN)
    ]
    text = render_scenario(waits)
    first_wait = text.index('  <recv request="BYE"')
    return text[:first_wait] + _PCAP_ACTION + "\n" + text[first_wait:]


def _call_keys(card: FlowCard, new_pin: str) -> str:
    """KEY_PLAN with this call's own card number, PIN, ID number and new PIN."""
    own = dict(zip(_PLACEHOLDERS, card.keys(new_pin), strict=False))
    keys = []
    for token in KEY_PLAN.split():
        value = own.get(token, token)
        if len(value) != len(token):
            # The scenario's waits are timed for the placeholder's length.
            raise ValueError("a card's keys do not fit the key plan")
        keys.append(value)
    return " ".join(keys)


def _write_call_pcap(path: Path, card: FlowCard, new_pin: str) -> None:
    """The call's whole RTP stream, keys included, as an owner-only pcap file."""
    from asterisk_local.caller import DEFAULT_TONE_MS, parse_keys
    from bench.rtp_pcap import key_presses, rtp_stream, write_pcap

    presses, total_ms = key_presses(parse_keys(_call_keys(card, new_pin)), DEFAULT_TONE_MS)
    packets = rtp_stream(
        presses,
        total_ms + AUDIO_TAIL_MS,
        DEFAULT_TONE_MS,
        ssrc=secrets.randbits(32),
        first_sequence=secrets.randbits(16),
        first_timestamp=secrets.randbits(32),
    )
    write_pcap(path, packets)


_SUCCESSFUL_CALLS = re.compile(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)")


def sipp_failed_calls(output: str, placed: int, exit_code: int) -> int:
    """Calls SIPp did not count successful, from its last statistics screen.

    A call still in progress at SIPp's `-timeout` is neither successful nor failed in its
    counters; it failed here. With no screen printed (SIPp stopped at once), all failed
    unless SIPp exited 0.
    """
    counts = _SUCCESSFUL_CALLS.findall(output)
    if not counts:
        return placed if exit_code != 0 else 0
    return max(placed - int(counts[-1]), 0)


@dataclass
class SippRun:
    """What the SIPp processes of one step reported: exit codes, failed calls, output's end."""

    exits: list[int] = field(default_factory=list)
    failed_calls: int = 0
    tail: str = ""


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children: the steps' SIPp processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sipp(
    work: Path, sip_port: int, rate: float, batch: list[FlowCard], new_pins: list[str]
) -> SippRun:
    """One SIPp process placing every call of the step (-l N -r RATE -m N), keys as events."""
    from asterisk_local.caller import free_udp_port

    scenario = work / "caller.xml"
    scenario.write_text(_scenario(), encoding="utf-8")
    # Read in order, one line a call; the file holds PINs, so it is the owner's only.
    fields = work / "cards.csv"
    fields.touch(mode=0o600)
    lines = ["SEQUENTIAL"]
    for card, new_pin in zip(batch, new_pins, strict=True):
        card_keys, pin, id_keys, new1, _ = card.keys(new_pin)
        lines.append(f"{card_keys};{pin};{id_keys};{new1};")
    n = len(batch)
    try:
        fields.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [
            "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-inf", str(fields),
            "-s", "12333", "-l", str(n), "-r", f"{rate:g}", "-m", str(n),
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
            "-timeout", f"{round(CALL_TIMEOUT + n / rate)}s", "-nostdin",
            "-max_socket", str(n + 100),
        ]  # fmt: skip
        proc = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    finally:
        fields.unlink(missing_ok=True)
    output = proc.stdout + proc.stderr
    return SippRun([proc.returncode], sipp_failed_calls(output, n, proc.returncode), output[-1500:])


def _free_port_pairs(n: int) -> list[tuple[int, int]]:
    """`n` (SIP port, media port) pairs free on 127.0.0.1, all different, and each media
    port's +2 too, which SIPp binds for video. All held open until all are found."""
    held: list[socket.socket] = []

    def bind(port: int) -> int | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            return None
        held.append(sock)
        bound: int = sock.getsockname()[1]
        return bound

    pairs: list[tuple[int, int]] = []
    try:
        while len(pairs) < n:
            sip, media = bind(0), bind(0)
            if sip is not None and media is not None and bind(media + 2) is not None:
                pairs.append((sip, media))
    finally:
        for sock in held:
            sock.close()
    return pairs


def _call_command(sip_port: int, scenario: Path, pcap: Path, ports: tuple[int, int]) -> list[str]:
    """SIPp's command line for one call with audio: the pcap's path, never keys."""
    own_sip, media = ports
    return [
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-key", "pcap", str(pcap),
        "-s", "12333", "-m", "1", "-l", "1", "-p", str(own_sip),
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(media),
        "-timeout", f"{round(CALL_TIMEOUT)}s", "-timeout_error", "-nostdin",
    ]  # fmt: skip


async def _sipp_call(
    work: Path, sip_port: int, scenario: Path, pcap: Path, ports: tuple[int, int], delay: float
) -> tuple[int, bool, str]:
    """One SIPp process, one call (-m 1 -l 1), its stream from `pcap` (a path, no keys):
    its exit code, whether SIPp counted the call failed, and the end of its output."""
    await asyncio.sleep(delay)
    proc = await asyncio.create_subprocess_exec(
        *_call_command(sip_port, scenario, pcap, ports),
        cwd=work,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    output = out.decode(errors="replace")
    code = proc.returncode if proc.returncode is not None else -1
    return code, sipp_failed_calls(output, 1, code) > 0, output[-1500:]


@contextlib.contextmanager
def _call_pcaps(
    work: Path, batch: list[FlowCard], new_pins: list[str], audio: bool
) -> Iterator[list[Path]]:
    """With `audio`, each call's stream as a private pcap (`call-N.pcap`), removed after."""
    pcaps = [work / f"call-{n}.pcap" for n in range(len(batch))] if audio else []
    try:
        for pcap, card, new_pin in zip(pcaps, batch, new_pins, strict=False):
            _write_call_pcap(pcap, card, new_pin)
        yield pcaps
    finally:
        for pcap in pcaps:
            pcap.unlink(missing_ok=True)


async def _sipp_with_audio(work: Path, sip_port: int, rate: float, pcaps: list[Path]) -> SippRun:
    """One SIPp process a call, started RATE a second, each playing its own pcap: audio,
    and the call's keys as RFC 4733 events in the same stream."""
    scenario = work / "caller-audio.xml"
    scenario.write_text(_audio_scenario(), encoding="utf-8")
    ports = _free_port_pairs(len(pcaps))
    results = await asyncio.gather(
        *(
            _sipp_call(work, sip_port, scenario, pcap, pair, n / rate)
            for n, (pcap, pair) in enumerate(zip(pcaps, ports, strict=True))
        )
    )
    # The output of a failed call, or else of the last.
    tail = next((out for code, failed, out in results if code or failed), results[-1][2])
    return SippRun([code for code, _, _ in results], sum(f for _, f, _ in results), tail)


def peak_calls(fastagi_log: Path, since: float) -> int:
    """The most calls in progress at once in the FastAGI server, from the line it logs as
    each call ends (its end time and length), for the calls that ended after `since`."""
    import datetime as dt

    changes: list[tuple[float, int]] = []
    for line in fastagi_log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or not str(event.get("event", "")).startswith("call."):
            continue
        seconds = event.get("seconds")
        if not isinstance(seconds, int | float):
            continue
        ended = dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
        end = ended.timestamp()
        if end >= since:
            changes += [(end - seconds, 1), (end, -1)]
    now = peak = 0
    for _, change in sorted(changes):
        now += change
        peak = max(peak, now)
    return peak


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from asterisk_local import instance as local
    from asterisk_local.caller import free_udp_port

    most = max(args.calls)
    cluster, cards = await _prepare(most)
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="asterisk-bench-") as tmp:
        server = ServerProcess("ivr12333", ours_argv(8000, args.workers), most + 512, Path(tmp))
        sip_port = free_udp_port()
        instance = local.up([f"127.0.0.1:{server.port}"], sip_port, agents=False, instance="bench")
        try:
            for n in sorted(args.calls):
                batch = cards[:n]
                new_pins = [card.other_pin() for card in batch]
                # The streams are written before the step's clock starts: they stand for
                # the callers' phones, not for load on the system under test.
                with _call_pcaps(Path(tmp), batch, new_pins, args.audio) as pcaps:
                    ast0, srv0 = _cpu_seconds(instance.pid), server.cpu_seconds()
                    sipp0, t0, started = _children_cpu(), time.monotonic(), time.time()
                    print(f"== {n} calls at {args.rate:g}/s", flush=True)
                    if args.audio:
                        sipp = await _sipp_with_audio(Path(tmp), sip_port, args.rate, pcaps)
                    else:
                        sipp = await asyncio.to_thread(
                            _sipp, Path(tmp), sip_port, args.rate, batch, new_pins
                        )
                    wall = time.monotonic() - t0
                    ast_cpu = _cpu_seconds(instance.pid) - ast0
                    srv_cpu = server.cpu_seconds() - srv0
                    sipp_cpu = _children_cpu() - sipp0
                for card, new_pin in zip(batch, new_pins, strict=True):
                    card.pin = new_pin
                wrong = await _check_database(batch)
                step = {
                    "calls": n,
                    "caller_audio": args.audio,
                    "rate_per_s": args.rate,
                    "changed": n - wrong,
                    "failed": wrong,
                    # The worst exit of the step's SIPp processes (one a call with --audio).
                    "sipp_exit": max(sipp.exits, key=abs),
                    "sipp_processes": len(sipp.exits),
                    "peak_calls_in_progress": peak_calls(server.log_path, started),
                    "sipp_failed_calls": sipp.failed_calls,
                    "wall_s": round(wall, 1),
                    "asterisk_cpu_s": round(ast_cpu, 2),
                    "asterisk_cores": round(ast_cpu / wall, 2),
                    "fastagi_cpu_s": round(srv_cpu, 2),
                    "fastagi_cores": round(srv_cpu / wall, 3),
                    "sipp_cpu_s": round(sipp_cpu, 2),
                    "sipp_cores": round(sipp_cpu / wall, 3),
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                }
                print(json.dumps(step), flush=True)
                steps.append(step)
                if wrong:
                    print(sipp.tail, flush=True)
                    # The callers whose change failed were told so; their PIN is unknown now.
                    break
        finally:
            local.down("bench", purge=True)
            server.stop()
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(server.log_path, args.keep_logs / "fastagi.log")
                shutil.copy(instance.log_path, args.keep_logs / "asterisk.log")
            cluster.stop()
    held = [s["calls"] for s in steps if not s["failed"]]
    return {
        "format": "asterisk_load/1",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workers": args.workers,
        "most_calls_with_no_failure": max(held) if held else 0,
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.asterisk_load", description=__doc__)
    p.add_argument("--calls", default="50,100,200,300", help="concurrent calls, rising")
    p.add_argument("--rate", type=float, default=10.0, help="calls placed a second (10)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--audio",
        action="store_true",
        help="callers send one RTP stream as a phone does: G.711 quiet noise, keys' events in it",
    )
    p.add_argument("--keep-logs", type=Path, default=None, help="copy the logs to this dir")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "asterisk-latest.json")
    args = p.parse_args(argv)
    args.calls = [int(n) for n in args.calls.split(",") if n.strip()]
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"most calls held with no failure: {result['most_calls_with_no_failure']}")
    return 0 if result["steps"] and not result["steps"][0]["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
