"""The server under test as a subprocess: start it, read its CPU and memory, stop it."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend.logsetup import read_announcement
from bench.emulator import HOST

# Sockets aside, each process needs a few dozen descriptors (pipes, logs, the loop itself).
FD_SLACK = 256
SERVER_START_TIMEOUT = 30.0


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
    """A FastAGI server subprocess, ready once it announces where it listens."""

    def __init__(self, name: str, argv: list[str], fds: int, workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        env = dict(os.environ)
        env.pop("IVR_LOG_FILE", None)
        # No env file from whoever's working directory: the server's defaults.
        env["IVR_ENV_FILE"] = str(workdir / "none.env")
        # stdout too goes to the log: the server logs there, and a pipe read only until
        # the ready line would fill and stop it.
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                # Inherited from us anyway; set explicitly so the server's limit is known.
                preexec_fn=lambda: raise_fd_limit(fds),
            )
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            for line in self.log_path.read_bytes().splitlines():
                ready = read_announcement(line, "listening")
                if ready is not None:
                    return int(ready["port"])
                # panoramisk_echo.py, not ours, prints a plain line.
                match = re.fullmatch(rb"listening on \S+:(\d+)", line)
                if match is not None:
                    return int(match.group(1))
            time.sleep(0.02)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{self.name} did not start:\n{tail}")

    def pids(self) -> list[int]:
        """The server and its worker processes (`--workers`), which are its children."""
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(stat.parent.name))
        return pids

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server and its workers so far (Linux /proc)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def memory_mib(self) -> dict[str, float]:
        """Resident and peak resident memory, summed over the server's processes."""
        found: dict[str, float] = {"vmrss_mib": 0.0, "vmhwm_mib": 0.0}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        name = key.lower() + "_mib"
                        found[name] = round(found[name] + int(value.split()[0]) / 1024, 1)
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


def ours_argv(max_calls: int, workers: int) -> list[str]:
    exe = Path(sys.executable).parent / "ivr12333"
    command = str(exe) if exe.exists() else shutil.which("ivr12333")
    if command is None:
        raise SystemExit("ivr12333 is not installed in this venv (make venv)")
    serve = ["agi", "serve", "--host", HOST, "--port", "0", "--drain-seconds", "2"]
    return [command, *serve, "--max-calls", str(max_calls), "--workers", str(workers)]


def fds_needed(args: argparse.Namespace) -> int:
    held_calls: int = args.held if "held" in args.modes else 0
    concurrency: int = args.concurrency
    return max(held_calls, concurrency) + FD_SLACK
