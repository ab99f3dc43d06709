"""Real calls through the local Asterisk 22: N concurrent SIPp callers each key a PIN change.

    .venv/bin/python -m bench.asterisk_load --calls 100,200,300 --rate 20

For each N in `--calls` (rising), one SIPp process places N calls (`-l N -r RATE -m N`) to
12333 at a local Asterisk (instance `bench`, its own SIP port) whose dialplan hands calls to
`ivr12333 agi serve` (`--workers`) on a PostgreSQL of the bench's own (see `bench.flow`).
Each call keys, as RFC 4733 events, the card menu's 2, then its own card's number, PIN, ID
number and a new PIN twice (from SIPp's injection file), with the README call's pauses. A
call counts when its card's stored hash matches the new PIN afterwards: every key was
recognised and the change was made. Each step reports the calls changed and failed and the
CPU of Asterisk and of the FastAGI server; the run stops at the first step with a failure.
The callers send key events only, no voice: Asterisk's audio to them is its side's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.flow import PINS, FlowCard, _check_database, _prepare
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


def _scenario() -> str:
    """The caller's scenario: the README's PIN change, each call keying its own card.

    The welcome is not interruptible; menus and entry prompts are cut short by a key.
    """
    from asterisk_local.caller import parse_keys, render_scenario

    keys = (
        "wait:8 2 wait:2 90000001# wait:2 900002# wait:2 900000000000000003# "
        "wait:2 900004# wait:2 900004# wait:6"
    )
    text = render_scenario(parse_keys(keys))
    for placeholder, field in _PLACEHOLDERS.items():
        text = text.replace(f'play_dtmf="{placeholder},', f'play_dtmf="{field},')
    return text


# The caller's own audio (`--audio`): a second of quiet noise, as a phone's microphone
# sends between words, looped for the whole call as 8 kHz G.711 mu-law RTP (payload 0).
AUDIO_FILE = "caller-audio.wav"
_AUDIO_ACTION = f'  <nop><action><exec rtp_stream="{AUDIO_FILE},-1,0"/></action></nop>'


def _mu_law(sample: int) -> int:
    """One 16-bit linear sample as a G.711 mu-law byte."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def write_audio(path: Path, seconds: float = 1.0, level: int = 600) -> None:
    """A mu-law WAV of quiet noise (format 7, 8 kHz, mono), for SIPp's rtp_stream."""
    import random
    import struct

    rng = random.Random(12333)
    data = bytes(_mu_law(rng.randint(-level, level)) for _ in range(round(8000 * seconds)))
    header = b"RIFF" + struct.pack("<I", 4 + 26 + 8 + len(data)) + b"WAVE"
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    path.write_bytes(
        header + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
        + struct.pack("<I", len(data)) + data
    )  # fmt: skip


def _sipp(
    work: Path,
    sip_port: int,
    rate: float,
    batch: list[FlowCard],
    new_pins: list[str],
    audio: bool = False,
) -> tuple[int, str]:
    """One SIPp process placing every call of the step (-l N -r RATE -m N)."""
    from asterisk_local.caller import free_udp_port

    scenario = work / "caller.xml"
    text = _scenario()
    if audio:
        write_audio(work / AUDIO_FILE)
        # Before the first key: the audio plays from the answer to the hang-up.
        first_key = text.index("  <nop><action><exec play_dtmf=")
        text = text[:first_key] + _AUDIO_ACTION + "\n" + text[first_key:]
    scenario.write_text(text, encoding="utf-8")
    # Read in order, one line a call; the file holds PINs, so it is the owner's only.
    fields = work / "cards.csv"
    fields.touch(mode=0o600)
    lines = ["SEQUENTIAL"]
    for card, new_pin in zip(batch, new_pins, strict=True):
        card_keys, pin, id_keys, new1, _ = card.keys(new_pin)
        lines.append(f"{card_keys};{pin};{id_keys};{new1};")
    fields.write_text("\n".join(lines) + "\n", encoding="utf-8")
    n = len(batch)
    command = [
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-inf", str(fields),
        "-s", "12333", "-l", str(n), "-r", f"{rate:g}", "-m", str(n),
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
        "-timeout", f"{round(CALL_TIMEOUT + n / rate)}s", "-nostdin", "-max_socket", str(n + 100),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    return proc.returncode, (proc.stdout + proc.stderr)[-1500:]


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
                new_pins = [PINS[1] if c.pin == PINS[0] else PINS[0] for c in batch]
                ast0, srv0, t0 = _cpu_seconds(instance.pid), server.cpu_seconds(), time.monotonic()
                print(f"== {n} calls at {args.rate:g}/s", flush=True)

                sipp_exit, sipp_tail = await asyncio.to_thread(
                    _sipp, Path(tmp), sip_port, args.rate, batch, new_pins, args.audio
                )
                wall = time.monotonic() - t0
                ast_cpu = _cpu_seconds(instance.pid) - ast0
                srv_cpu = server.cpu_seconds() - srv0
                for card, new_pin in zip(batch, new_pins, strict=True):
                    card.pin = new_pin
                wrong = await _check_database(batch)
                step = {
                    "calls": n,
                    "caller_audio": args.audio,
                    "rate_per_s": args.rate,
                    "changed": n - wrong,
                    "failed": wrong,
                    "sipp_exit": sipp_exit,
                    "wall_s": round(wall, 1),
                    "asterisk_cpu_s": round(ast_cpu, 2),
                    "asterisk_cores": round(ast_cpu / wall, 2),
                    "fastagi_cpu_s": round(srv_cpu, 2),
                    "fastagi_cores": round(srv_cpu / wall, 3),
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                }
                print(json.dumps(step), flush=True)
                steps.append(step)
                if wrong:
                    print(sipp_tail, flush=True)
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
        help="callers also send audio (quiet noise, G.711 RTP) for the whole call",
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
