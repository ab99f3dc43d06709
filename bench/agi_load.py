"""Emulated Asterisk load against the real FastAGI server (`ivr12333 agi serve`).

Starts the server as a subprocess on a free loopback port and plays the `echo` script from
many emulated calls over one asyncio loop. Each call sends the `agi_*` environment, answers
every command as Asterisk would and checks the read-back. The figure measured is the step
time: from sending a reply to receiving the server's next command.

Modes (all run by default, in this order):
  serial     one call at a time, no waiting: the server's own step cost.
  saturated  K calls at once, back to back, no waiting: calls completed per second.
  held       N calls in progress at once; each caller keys slowly, so GET DATA is answered
             after `--keys` x `--think` seconds; each line places calls back to back.

    .venv/bin/python -m bench.agi_load --held 5000
    .venv/bin/python -m bench.agi_load --modes serial,saturated --panoramisk none

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.emulator import HOST
from bench.find_panoramisk import PANORAMISK_APP, find_panoramisk
from bench.flow import run_flow
from bench.modes import Budget, run_server
from bench.processes import FD_SLACK, fds_needed, ours_argv, raise_fd_limit
from bench.report import MODES, against_panoramisk, print_ratios, print_table

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.agi_load",
        description="Emulated Asterisk load against `ivr12333 agi serve` (script echo).",
    )
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma list of %(default)s, and flow (the real change-PIN flow, not by default)",
    )
    p.add_argument("--flow-calls", type=int, default=8, help="flow: callers at once (%(default)s)")
    p.add_argument("--flow-seconds", type=float, default=30.0, help="flow: seconds (%(default)s)")
    p.add_argument("--serial-calls", type=int, default=500, help="serial: calls (%(default)s)")
    p.add_argument(
        "--concurrency", type=int, default=50, help="saturated: calls at once (%(default)s)"
    )
    p.add_argument(
        "--saturate-seconds", type=float, default=10.0, help="saturated: seconds (%(default)s)"
    )
    p.add_argument("--held", type=int, default=2000, help="held: calls held open (%(default)s)")
    p.add_argument(
        "--think", type=float, default=2.0, help="held: seconds between keys (%(default)s)"
    )
    p.add_argument("--keys", type=int, default=6, help="keys the caller enters (%(default)s)")
    p.add_argument(
        "--held-seconds",
        type=float,
        default=30.0,
        help="held: seconds of steady state after the ramp (%(default)s)",
    )
    p.add_argument(
        "--ramp-seconds",
        type=float,
        default=None,
        help="held: seconds over which lines start (default: keys x think)",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=240.0,
        help="wall-clock limit for the whole run, seconds (%(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=10_000,
        help="refuse to open more sockets at once than this (%(default)s)",
    )
    p.add_argument(
        "--panoramisk",
        default="auto",
        metavar="PYTHON|auto|none",
        help="also run a panoramisk app under this interpreter (auto: bench/.venv-panoramisk)",
    )
    p.add_argument(
        "--skip-ours", action="store_true", help="run only the panoramisk app (comparisons)"
    )
    p.add_argument(
        "--server-log-level",
        default="info",
        help="IVR_LOG_LEVEL for our server (%(default)s, as in production)",
    )
    p.add_argument(
        "--workers",
        default="1",
        help="comma list of `agi serve --workers` counts to run ours with (%(default)s)",
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy server logs to this dir")
    p.add_argument("--seed", type=int, default=12333)
    args = p.parse_args(argv)
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        p.error("--workers takes a comma list of counts")
    if any(w < 1 for w in args.workers) or len(set(args.workers)) != len(args.workers):
        p.error("--workers: distinct counts, each at least 1")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.flow = "flow" in args.modes
    args.modes = [m for m in args.modes if m != "flow"]
    for mode in args.modes:
        if mode not in MODES:
            p.error(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if not 1 <= args.keys <= 20:
        p.error("--keys must be 1-20 (the echo script takes up to 20)")
    for name in ("serial_calls", "concurrency", "held"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if max(args.held, args.concurrency) > args.max_connections:
        p.error(f"--held/--concurrency above --max-connections ({args.max_connections})")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    budget = Budget(time.monotonic() + args.time_limit)
    # The machine is shared: a high load explains a slow run.
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    panoramisk_python, panoramisk_note = find_panoramisk(args.panoramisk)
    servers: dict[str, dict[str, Any]] = {}
    # Enough for every held call plus the refusal margin, as Asterisk would see in production.
    max_calls = max(8000, args.held + FD_SLACK)
    with tempfile.TemporaryDirectory(prefix="agi-bench-") as tmp:
        workdir = Path(tmp)
        os.environ["IVR_LOG_LEVEL"] = args.server_log_level
        # One worker, then panoramisk, then more workers: the comparison that matters most
        # is taken closest together on a machine whose load drifts.
        counts = [] if args.skip_ours or not args.modes else args.workers
        if 1 in counts:
            servers["ivr12333"] = await run_server(
                "ivr12333", ours_argv(max_calls, 1), args, budget, workdir
            )
        if panoramisk_python is not None and args.modes:
            argv = [panoramisk_python, str(PANORAMISK_APP), "--host", HOST, "--port", "0"]
            servers["panoramisk"] = await run_server("panoramisk", argv, args, budget, workdir)
        elif panoramisk_python is None:
            print(f"\n(panoramisk comparison skipped: {panoramisk_note})")
        for workers in [w for w in counts if w != 1]:
            name = f"ivr12333-w{workers}"
            servers[name] = await run_server(
                name, ours_argv(max_calls, workers), args, budget, workdir
            )
        flows = [await run_flow(args, workdir, w) for w in args.workers] if args.flow else []
    print_table(servers)
    ratios = against_panoramisk(servers)
    print_ratios(ratios)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {
        "format": "agi_load/1",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "options": options,
        "panoramisk": panoramisk_note,
        "servers": servers,
        "ratios_to_panoramisk": ratios,
        "flow": flows,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    raise_fd_limit(fds_needed(args))
    # The client's own collector pauses would be measured as server step time; thousands of
    # calls' objects die by reference counting, so make collections rare.
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    # The client on uvloop too: its own cost per command is in every step it measures.
    result = uvloop.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")
    failed = any(
        f["errors"] or f["database_mismatches"] or f["server_log_errors"] for f in result["flow"]
    ) or any(
        server.get("server_log_errors") or any(server.get(m, {}).get("errors") for m in MODES)
        for server in result["servers"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
