"""The modes: serial, saturated and held calls against one server process."""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emulator import place_call
from bench.processes import ServerProcess, fds_needed
from bench.report import print_row
from bench.stats import Stats, summary


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
