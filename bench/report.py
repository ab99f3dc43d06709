"""The table printed while and after a run."""

from __future__ import annotations

from typing import Any

MODES = ("serial", "saturated", "held")

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


def _ratio(ours: Any, theirs: Any) -> float | None:
    if not ours or not theirs:
        return None
    return round(float(ours) / float(theirs), 2)


def against_panoramisk(servers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each of our runs over panoramisk's in the same run: below 1 is better for step
    times and CPU, above 1 for calls/s."""
    theirs = servers.get("panoramisk")
    if theirs is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, ours in servers.items():
        if name == "panoramisk":
            continue
        row: dict[str, Any] = {}
        for mode in MODES:
            a, b = ours.get(mode), theirs.get(mode)
            if not a or not b or "steps" not in a or "steps" not in b:
                continue
            row[mode] = {
                "step_p50": _ratio(a["steps"]["p50_ms"], b["steps"]["p50_ms"]),
                "step_p99": _ratio(a["steps"]["p99_ms"], b["steps"]["p99_ms"]),
                "calls_per_s": _ratio(a["calls_per_s"], b["calls_per_s"]),
                "server_cpu_per_call": _ratio(
                    a["server_cpu_ms_per_call"], b["server_cpu_ms_per_call"]
                ),
            }
        out[name] = row
    return out


def print_ratios(ratios: dict[str, dict[str, Any]]) -> None:
    if not ratios:
        return
    print("\nover panoramisk in this run (step p50 / p99, calls/s, server CPU per call):")
    for name, row in ratios.items():
        for mode, r in row.items():
            print(
                f"{name:<14} {mode:<9} p50 {r['step_p50']}  p99 {r['step_p99']}  "
                f"calls/s {r['calls_per_s']}  CPU/call {r['server_cpu_per_call']}"
            )
