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
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.fake_asterisk import agi_environment

HOST = "127.0.0.1"
SCRIPT = "echo"
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PANORAMISK_APP = BENCH_DIR / "panoramisk_echo.py"
PANORAMISK_VENV_PYTHON = BENCH_DIR / ".venv-panoramisk" / "bin" / "python"
MODES = ("serial", "saturated", "held")

# Sockets aside, each process needs a few dozen descriptors (pipes, logs, the loop itself).
FD_SLACK = 256
# Asterisk's lines are short; anything longer means the stream is not a server's command.
LINE_LIMIT = 8192
SERVER_START_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
# Beyond the caller's own waiting, how long a call may take before it counts as stuck.
CALL_SLACK_SECONDS = 30.0

# Replies as Asterisk 22 words them (res_agi.c); the same table as ivr.fake_asterisk.
REPLY_OK = b"200 result=0\n"
REPLY_ONE = b"200 result=1\n"
REPLY_STREAMED = b"200 result=0 endpos=16000\n"
REPLY_CHANNEL_UP = b"200 result=6\n"
REPLY_INVALID = b"510 Invalid or unknown command\n"


# -- one emulated call ---------------------------------------------------------------------


@dataclass
class Stats:
    """What one mode measured, over all its calls."""

    steps: list[float] = field(default_factory=list)
    # Environment sent -> first command: accept, header parsing and flow start-up.
    first_command: list[float] = field(default_factory=list)
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    # Held mode records only once every line has started (steady state, not the ramp).
    recording: bool = True
    in_progress: int = 0
    peak_in_progress: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


_unique_ids = itertools.count(1)


def environment(port: int) -> bytes:
    unique_id = f"1790000000.{next(_unique_ids)}"
    caller = f"138{random.randrange(10**8):08d}"
    lines = [f"{k}: {v}\n" for k, v in agi_environment(SCRIPT, HOST, port, caller, unique_id)]
    return ("".join(lines) + "\n").encode()


class EmulatedCall(asyncio.Protocol):
    """The Asterisk side of one FastAGI call running `echo`.

    A Protocol rather than streams: thousands of calls on one loop, and the client's own
    overhead lands in every step it measures.
    """

    def __init__(
        self, stats: Stats, env: bytes, digits: str, by_hash: bool, key_wait: float
    ) -> None:
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._stats = stats
        self._env = env
        self._digits = digits
        self._by_hash = by_hash
        self._key_wait = key_wait
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._sent_at = 0.0
        self._first = True
        self._waiting: asyncio.TimerHandle | None = None
        self._read_back = ""
        self._next_set = False
        self._outcome = ""

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send(self._env)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        while not self._outcome:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            self._command(line.decode("utf-8", "replace").rstrip("\r"), now)
        if len(self._buffer) > LINE_LIMIT:
            self._fail("line-too-long")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
        if not self._outcome:
            if exc is not None:
                self._outcome = f"connection-{type(exc).__name__}"
            elif self._next_set and self._read_back == self._digits:
                self._outcome = "ok"
            else:
                self._outcome = "ended-early"
        if not self.done.done():
            self.done.set_result(self._outcome)

    # -- the call --------------------------------------------------------------------------

    def abort(self, outcome: str) -> None:
        self._fail(outcome)

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)
        self._sent_at = time.perf_counter()

    def _fail(self, outcome: str) -> None:
        if not self._outcome:
            self._outcome = outcome
        if self._transport is not None:
            self._transport.abort()

    def _command(self, line: str, now: float) -> None:
        if self._waiting is not None:
            # Asterisk runs one command at a time; a second one mid-GET DATA is a server bug.
            self._fail("command-during-get-data")
            return
        if self._stats.recording:
            (self._stats.first_command if self._first else self._stats.steps).append(
                now - self._sent_at
            )
        self._first = False
        upper = line.upper()
        if upper.startswith("FAILURE"):
            # Asterisk ends the AGI here (AGISTATUS=FAILURE): the server refused the call.
            self._fail("refused")
            return
        if upper.startswith("STREAM FILE "):
            sound = line.split()[2]
            if "/digit-" in sound:
                self._read_back += sound.strip('"').rsplit("-", 1)[-1]
            self._send(REPLY_STREAMED)
        elif upper.startswith("GET DATA "):
            if self._key_wait > 0:
                loop = asyncio.get_running_loop()
                self._waiting = loop.call_later(self._key_wait, self._keys_entered)
            else:
                self._keys_entered()
        elif upper.startswith("SET VARIABLE "):
            # pyst2 quotes the name, panoramisk apps may not: compare it unquoted.
            name = line.split(maxsplit=3)[2].strip('"') if line.count(" ") >= 2 else ""
            self._next_set = self._next_set or name == "IVR_NEXT"
            self._send(REPLY_ONE)
        elif upper.startswith("VERBOSE "):
            self._send(REPLY_ONE)
        elif upper in ("ANSWER", "NOOP") or upper.startswith("NOOP "):
            self._send(REPLY_OK)
        elif upper == "CHANNEL STATUS":
            self._send(REPLY_CHANNEL_UP)
        elif upper == "HANGUP":
            self._send(REPLY_ONE)
            self._outcome = "server-hangup"
            assert self._transport is not None
            self._transport.close()
        else:
            self._send(REPLY_INVALID)
            self._fail("unexpected-command")

    def _keys_entered(self) -> None:
        self._waiting = None
        # Keys ended by '#' read back as they are; ended by silence they carry "(timeout)".
        tail = "" if self._by_hash else " (timeout)"
        self._send(f"200 result={self._digits}{tail}\n".encode())


async def place_call(port: int, stats: Stats, keys: int, key_wait: float) -> None:
    """One call from connect to the server's close; the outcome goes into `stats`."""
    loop = asyncio.get_running_loop()
    digits = "".join(random.choice("0123456789") for _ in range(keys))
    call = EmulatedCall(stats, environment(port), digits, random.random() < 0.5, key_wait)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await loop.create_connection(lambda: call, HOST, port)
    except TimeoutError:
        stats.error("connect-timeout")
        return
    except OSError as exc:
        stats.error(f"connect-{type(exc).__name__}")
        return
    stats.in_progress += 1
    stats.peak_in_progress = max(stats.peak_in_progress, stats.in_progress)
    try:
        async with asyncio.timeout(key_wait + CALL_SLACK_SECONDS):
            outcome = await asyncio.shield(call.done)
    except TimeoutError:
        call.abort("call-timeout")
        outcome = "call-timeout"
    except asyncio.CancelledError:
        call.abort("cut-short")  # the run's time limit
        raise
    finally:
        stats.in_progress -= 1
    if outcome == "ok":
        stats.completed += 1
    else:
        stats.error(outcome)


# -- the server under test -----------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft descriptor limit to `needed` if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"need {needed} file descriptors, the hard limit is {hard}: "
            "lower --held/--concurrency or raise the hard limit (ulimit -Hn)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class ServerProcess:
    """A FastAGI server subprocess that prints `listening on HOST:PORT` when ready."""

    def __init__(self, name: str, argv: list[str], fds: int, workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        env = dict(os.environ)
        env.pop("IVR_LOG_FILE", None)
        # No env file from whoever's working directory: the server's defaults.
        env["IVR_ENV_FILE"] = str(workdir / "none.env")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=workdir,
                env=env,
                # Inherited from us anyway; set explicitly so the server's limit is known.
                preexec_fn=lambda: raise_fd_limit(fds),
            )
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        seen = b""
        while b"\n" not in seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            chunk = os.read(self.proc.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(f"{self.name} did not start:\n{tail}")
            seen += chunk
        match = re.search(rb"listening on \S+:(\d+)", seen)
        if match is None:
            self.stop()
            raise SystemExit(f"{self.name} said {seen!r}, not 'listening on HOST:PORT'")
        return int(match.group(1))

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key.lower() + "_mib"] = round(int(value.split()[0]) / 1024, 1)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log_errors(self) -> dict[str, int]:
        """Error-level events in the server's log, by event name (ours logs JSON lines)."""
        counts: dict[str, int] = {}
        with self.log_path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if '"level": "error"' in line or "Traceback" in line:
                    match = re.search(r'"event": "([^"]*)"', line)
                    name = match.group(1) if match else line.strip()[:60]
                    counts[name] = counts.get(name, 0) + 1
        return counts


def ours_argv(max_calls: int) -> list[str]:
    exe = Path(sys.executable).parent / "ivr12333"
    command = str(exe) if exe.exists() else shutil.which("ivr12333")
    if command is None:
        raise SystemExit("ivr12333 is not installed in this venv (make venv)")
    serve = ["agi", "serve", "--host", HOST, "--port", "0", "--drain-seconds", "2"]
    return [command, *serve, "--max-calls", str(max_calls)]


def find_panoramisk(choice: str) -> tuple[str | None, str]:
    """The interpreter to run the panoramisk app with, or None and why not."""
    if choice == "none":
        return None, "not asked for"
    candidates = [choice] if choice != "auto" else [str(PANORAMISK_VENV_PYTHON), sys.executable]
    for python in candidates:
        if not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('panoramisk'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return python, f"panoramisk {probe.stdout.strip()} under {python}"
    return None, "panoramisk not installed (see bench/README.md)"


# -- the modes -----------------------------------------------------------------------------


def percentiles(values: list[float], *qs: float) -> dict[str, float | None]:
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        label = f"p{q * 100:g}_ms"
        if not ordered:
            out[label] = None
            continue
        rank = max(math.ceil(q * len(ordered)) - 1, 0)
        out[label] = round(ordered[rank] * 1000, 3)
    out["max_ms"] = round(ordered[-1] * 1000, 3) if ordered else None
    return out


@dataclass
class Budget:
    """The run's wall-clock limit, shared by every mode of every server."""

    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()


async def within(budget: Budget, work: Coroutine[Any, Any, None]) -> bool:
    """Run `work` until done or the budget runs out; False if it was cut short."""
    try:
        async with asyncio.timeout(max(budget.left(), 0.0)):
            await work
    except TimeoutError:
        return False
    return True


def summary(
    stats: Stats, elapsed: float, cpu: float, client_cpu: float, finished: bool
) -> dict[str, Any]:
    calls = stats.completed + sum(stats.errors.values())
    return {
        "finished": finished,
        "calls_completed": stats.completed,
        "errors": dict(sorted(stats.errors.items())),
        "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(stats.completed / elapsed, 1) if elapsed > 0 else None,
        "steps": {"count": len(stats.steps)} | percentiles(stats.steps, 0.5, 0.95, 0.99, 0.999),
        "first_command": {"count": len(stats.first_command)}
        | percentiles(stats.first_command, 0.5, 0.99),
        "peak_calls_in_progress": stats.peak_in_progress,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_ms_per_call": round(cpu * 1000 / calls, 3) if calls else None,
        "client_cpu_s": round(client_cpu, 3),
    }


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    server: ServerProcess,
    budget: Budget,
    stats: Stats,
    work: Callable[[], Coroutine[Any, Any, None]],
) -> dict[str, Any]:
    cpu0, me0, t0 = server.cpu_seconds(), client_cpu(), time.perf_counter()
    finished = await within(budget, work())
    elapsed = time.perf_counter() - t0
    return (
        summary(stats, elapsed, server.cpu_seconds() - cpu0, client_cpu() - me0, finished)
        | server.memory_mib()
    )


async def serial(server: ServerProcess, budget: Budget, args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()

    async def work() -> None:
        for _ in range(args.serial_calls):
            await place_call(server.port, stats, args.keys, 0.0)

    return await measure(server, budget, stats, work)


async def saturated(
    server: ServerProcess, budget: Budget, args: argparse.Namespace
) -> dict[str, Any]:
    stats = Stats()
    end = time.monotonic() + args.saturate_seconds

    async def worker() -> None:
        while time.monotonic() < end:
            await place_call(server.port, stats, args.keys, 0.0)

    async def work() -> None:
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))

    result = await measure(server, budget, stats, work)
    return {"concurrency": args.concurrency} | result


async def held(server: ServerProcess, budget: Budget, args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats(recording=False)
    key_wait = args.keys * args.think
    # Spread first calls over one call's length, so arrivals are even from the start.
    ramp = args.ramp_seconds if args.ramp_seconds is not None else key_wait
    started = time.monotonic()
    stop_placing = started + ramp + args.held_seconds

    async def line(index: int) -> None:
        await asyncio.sleep(ramp * index / args.held)
        while time.monotonic() < stop_placing:
            await place_call(server.port, stats, args.keys, key_wait)

    async def work() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(ramp, lambda: setattr(stats, "recording", True))
        await asyncio.gather(*(line(i) for i in range(args.held)))

    result = await measure(server, budget, stats, work)
    return {
        "held": args.held,
        "key_wait_s": key_wait,
        "ramp_s": ramp,
        "note": "steps and first_command recorded after the ramp only",
    } | result


async def run_server(
    name: str, argv: list[str], args: argparse.Namespace, budget: Budget, workdir: Path
) -> dict[str, Any]:
    print(f"\n== {name}: starting", flush=True)
    server = ServerProcess(name, argv, fds_needed(args), workdir)
    results: dict[str, Any] = {"argv": [Path(argv[0]).name, *argv[1:]]}
    modes = {"serial": serial, "saturated": saturated, "held": held}
    try:
        for mode in args.modes:
            if budget.left() <= 1:
                results[mode] = {"finished": False, "skipped": "time limit reached"}
                continue
            print(f"== {name}: {mode}", flush=True)
            results[mode] = await modes[mode](server, budget, args)
            print_row(name, mode, results[mode])
    finally:
        server.stop()
        results["server_log_errors"] = server.log_errors()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(server.log_path, args.keep_logs / server.log_path.name)
    return results


# -- output ----------------------------------------------------------------------------------

_HEADER = (
    f"{'server':<11} {'mode':<9} {'calls':>7} {'errors':>6} {'calls/s':>8} "
    f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'srv CPU ms/call':>15}"
)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_row(name: str, mode: str, r: dict[str, Any]) -> None:
    steps = r["steps"]
    errors = sum(r["errors"].values())
    cut = "" if r["finished"] else "  (cut short by --time-limit)"
    print(
        f"{name:<11} {mode:<9} {r['calls_completed']:>7} {errors:>6} {r['calls_per_s']:>8} "
        f"{_ms(steps['p50_ms']):>8} {_ms(steps['p95_ms']):>8} {_ms(steps['p99_ms']):>8} "
        f"{_ms(steps['max_ms']):>8} {_ms(r['server_cpu_ms_per_call']):>15}{cut}",
        flush=True,
    )


def print_table(servers: dict[str, dict[str, Any]]) -> None:
    print("\n" + _HEADER)
    for name, results in servers.items():
        for mode in MODES:
            r = results.get(mode)
            if r is not None and "steps" in r:
                print_row(name, mode, r)
    for name, results in servers.items():
        for mode in MODES:
            r = results.get(mode)
            if r is not None and r.get("errors"):
                print(f"{name} {mode} errors: {r['errors']}")
        if results.get("server_log_errors"):
            print(f"{name} server log errors: {results['server_log_errors']}")


# -- command line ----------------------------------------------------------------------------


def fds_needed(args: argparse.Namespace) -> int:
    held_calls: int = args.held if "held" in args.modes else 0
    concurrency: int = args.concurrency
    return max(held_calls, concurrency) + FD_SLACK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.agi_load",
        description="Emulated Asterisk load against `ivr12333 agi serve` (script echo).",
    )
    p.add_argument("--modes", default=",".join(MODES), help="comma list of %(default)s")
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
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy server logs to this dir")
    p.add_argument("--seed", type=int, default=12333)
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
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
    panoramisk_python, panoramisk_note = find_panoramisk(args.panoramisk)
    servers: dict[str, dict[str, Any]] = {}
    # Enough for every held call plus the refusal margin, as Asterisk would see in production.
    max_calls = max(8000, args.held + FD_SLACK)
    with tempfile.TemporaryDirectory(prefix="agi-bench-") as tmp:
        workdir = Path(tmp)
        os.environ["IVR_LOG_LEVEL"] = args.server_log_level
        if not args.skip_ours:
            servers["ivr12333"] = await run_server(
                "ivr12333", ours_argv(max_calls), args, budget, workdir
            )
        if panoramisk_python is not None:
            argv = [panoramisk_python, str(PANORAMISK_APP), "--host", HOST, "--port", "0"]
            servers["panoramisk"] = await run_server("panoramisk", argv, args, budget, workdir)
        else:
            print(f"\n(panoramisk comparison skipped: {panoramisk_note})")
    print_table(servers)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {
        "format": "agi_load/1",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # The machine is shared: a high load here explains a slow run.
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "options": options,
        "panoramisk": panoramisk_note,
        "servers": servers,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    raise_fd_limit(fds_needed(args))
    # The client's own collector pauses would be measured as server step time; thousands of
    # calls' objects die by reference counting, so make collections rare.
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")
    failed = any(
        server.get("server_log_errors") or any(server.get(m, {}).get("errors") for m in MODES)
        for server in result["servers"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
