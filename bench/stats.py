"""What a mode measured: step times, outcomes and the summary written to the JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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
