"""Every Prometheus metric of the service, in one place, for the FastAGI servers and the
console alike.

Names follow Prometheus' conventions: the `ivr12333_` prefix, base units (seconds),
`_total` on counters. Label values come from short closed lists written here; anything
else becomes "other", so no label can ever carry a call id, a card or ID number, a caller
number or anything else a caller keyed (`bounded`).

Counts of business events (lockouts, loss reports, failed logins, self-services done) are
taken from the audit rows a use case writes, once its transaction has committed
(`note_audit`, `committed`): a rolled-back step counts nothing.
"""

from __future__ import annotations

import contextvars
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# How a call ended, as the FastAGI server saw its end (ivr.callstats):
#   served    a self-service was completed in the call (PIN changed, loss reported, status
#             heard), and the call was not handed to an agent, however it ended then
#   agent     handed to the agent queue (IVR_NEXT=agent)
#   hung_up   the caller hung up before being served
#   ended     the IVR said goodbye without a completed self-service (e.g. no valid entry)
#   failed    the card service was unavailable, or the handler failed (IVR_NEXT=unavailable)
#   shutdown  ended by the server draining at shutdown
OUTCOMES: Final = ("served", "agent", "hung_up", "ended", "failed", "shutdown")
# AGI scripts served (ivr.contract); any other script name is counted as "other".
SCRIPTS: Final = ("main", "change-pin", "report-loss", "card-status", "echo")
CHANNELS: Final = ("ivr", "agent", "counter", "operator")
SERVICES: Final = ("change_pin", "report_loss", "card_status")
LOGIN_FAILURES: Final = ("wrong_password", "unknown_user", "inactive")
REFUSALS: Final = ("draining", "capacity")
DB_RESULTS: Final = ("ok", "unavailable", "refused", "rolled_back")
# Server time between Asterisk's reply and the next command, per AGI command.
AGI_COMMANDS: Final = (
    "stream_file",
    "get_data",
    "exec",
    "channel_status",
    "set_variable",
    "get_variable",
    "verbose",
    "hangup",
)


def bounded(value: str, allowed: Iterable[str]) -> str:
    """`value` if it is one of `allowed`, else "other": the only way a label value is made."""
    return value if value in allowed else "other"


CALLS_IN_PROGRESS: Final = Gauge(
    "ivr12333_calls_in_progress",
    "Calls whose flow is running in this FastAGI server.",
    registry=REGISTRY,
)
CALLS: Final = Counter(
    "ivr12333_calls_total",
    "Calls that ended, by AGI script and how they ended.",
    ["script", "outcome"],
    registry=REGISTRY,
)
CALLS_REFUSED: Final = Counter(
    "ivr12333_calls_refused_total",
    "Calls answered FAILURE at once (Asterisk tries the next server), by reason.",
    ["reason"],
    registry=REGISTRY,
)
CALL_SECONDS: Final = Histogram(
    "ivr12333_call_duration_seconds",
    "Time from the call's AGI environment to the end of its flow, by how it ended.",
    ["outcome"],
    buckets=(5, 15, 30, 45, 60, 90, 120, 180, 300, 600),
    registry=REGISTRY,
)


class LoopHistogram(Collector):
    """A histogram with one label, observed and scraped on the event loop's thread only:
    plain counts, no lock. prometheus_client's Histogram takes two locks an observation,
    and the FastAGI server observes every AGI command of every call; its /metrics is
    served on the same loop (`backend.health`), so a scrape never sees half an
    observation. Label values are fixed up front (`child`), like `bounded` labels."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        values: Iterable[str],
        buckets: tuple[float, ...],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._label = label
        self._bounds = buckets
        self._children = {value: LoopHistogramChild(buckets) for value in values}
        registry.register(self)

    def child(self, value: str) -> LoopHistogramChild:
        return self._children[value]

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=[self._label])

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, child in self._children.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*self._bounds, float("inf")), child.counts, strict=True):
                cumulative += count
                buckets.append((_bucket_bound(bound), cumulative))
            family.add_metric([value], buckets, child.total)
        yield family


def _bucket_bound(bound: float) -> str:
    """The `le` label as Prometheus writes it: 0.0005, 1.0, +Inf."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class LoopHistogramChild:
    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        # Prometheus buckets are "less than or equal": the first bound >= amount.
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.total += amount


AGI_STEP_SECONDS: Final = LoopHistogram(
    "ivr12333_agi_step_seconds",
    "Server time from Asterisk's reply (or the call's environment) to the next command.",
    "command",
    (*AGI_COMMANDS, "other"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
DB_STEP_SECONDS: Final = Histogram(
    "ivr12333_db_step_seconds",
    "Duration of one backend transaction, pool checkout included, by result "
    "(refused: failed at once while the database is unreachable; rolled_back: the step "
    "itself raised).",
    ["result"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CALL_RECORDS_DROPPED: Final = Counter(
    "ivr12333_call_records_dropped_total",
    "Ended calls not recorded for the wallboard (database unavailable, or too many waiting).",
    registry=REGISTRY,
)
LOCKOUTS: Final = Counter(
    "ivr12333_card_lockouts_total",
    "Cards locked by wrong PINs, by the channel the last wrong PIN came from.",
    ["channel"],
    registry=REGISTRY,
)
LOSS_REPORTS: Final = Counter(
    "ivr12333_loss_reports_total",
    "Loss reports filed (not already-existing ones), by channel.",
    ["channel"],
    registry=REGISTRY,
)
SELF_SERVICES: Final = Counter(
    "ivr12333_self_services_total",
    "Self-services completed by callers in the IVR, by service.",
    ["service"],
    registry=REGISTRY,
)
FAILED_LOGINS: Final = Counter(
    "ivr12333_console_failed_logins_total",
    "Console logins refused after the password check, by reason.",
    ["reason"],
    registry=REGISTRY,
)

for _outcome in OUTCOMES:
    CALL_SECONDS.labels(_outcome)
for _channel in ("ivr", "agent", "counter"):
    LOSS_REPORTS.labels(_channel)
LOCKOUTS.labels("ivr")
for _reason in LOGIN_FAILURES:
    FAILED_LOGINS.labels(_reason)
for _service in SERVICES:
    SELF_SERVICES.labels(_service)
for _reason in REFUSALS:
    CALLS_REFUSED.labels(_reason)

# (action, outcome) of an IVR audit row that means a self-service was completed.
_SELF_SERVICE_DONE: Final = {
    ("change-pin", "changed"): "change_pin",
    ("report-loss", "reported"): "report_loss",
    ("report-loss", "existing"): "report_loss",
    ("verify", "proven"): "card_status",
}


@dataclass
class CallTally:
    """One call as the metrics see it; shared by the call's task and its flow greenlet."""

    served: bool = False


# The call a backend step belongs to, if any (set by the FastAGI server before the flow).
CURRENT_CALL: Final[contextvars.ContextVar[CallTally | None]] = contextvars.ContextVar(
    "ivr12333_current_call", default=None
)

# Audit rows written in the current transaction, counted when it commits.
_AUDITED: Final[contextvars.ContextVar[list[tuple[str, str, str]] | None]] = contextvars.ContextVar(
    "ivr12333_audited", default=None
)


def transaction_started() -> contextvars.Token[list[tuple[str, str, str]] | None]:
    return _AUDITED.set([])


def transaction_ended(
    token: contextvars.Token[list[tuple[str, str, str]] | None], *, committed: bool
) -> None:
    rows = _AUDITED.get() or []
    try:
        _AUDITED.reset(token)
    except ValueError:
        # Ended in another context (a transaction abandoned and finalised elsewhere).
        return
    if committed:
        for channel, action, outcome in rows:
            _count_audit(channel, action, outcome)


def note_audit(channel: str, action: str, outcome: str) -> None:
    """An audit row was written; it counts once its transaction commits (or at once
    outside `backend.services.common.transaction`)."""
    pending = _AUDITED.get()
    if pending is None:
        _count_audit(channel, action, outcome)
    else:
        pending.append((channel, action, outcome))


def _count_audit(channel: str, action: str, outcome: str) -> None:
    if outcome == "wrong-pin-locked":
        LOCKOUTS.labels(bounded(channel, CHANNELS)).inc()
    elif outcome == "reported" and action in ("report-loss", "written-loss-report"):
        LOSS_REPORTS.labels(bounded(channel, CHANNELS)).inc()
    elif action == "login" and outcome != "ok":
        FAILED_LOGINS.labels(bounded(outcome.replace("-", "_"), LOGIN_FAILURES)).inc()
    if channel == "ivr":
        service = _SELF_SERVICE_DONE.get((action, outcome))
        if service is not None:
            SELF_SERVICES.labels(service).inc()
            tally = CURRENT_CALL.get()
            if tally is not None:
                tally.served = True


class _PoolCollector(Collector):
    """The database pool of this process, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from backend.db.engine import existing_databases

        in_use = GaugeMetricFamily(
            "ivr12333_db_pool_connections",
            "Pooled database connections of this process, by state.",
            labels=["state"],
        )
        limit = GaugeMetricFamily(
            "ivr12333_db_pool_limit",
            "Most connections this process may hold (pool size plus overflow).",
        )
        reachable = GaugeMetricFamily(
            "ivr12333_db_reachable",
            "1 while the database answers; 0 while steps fail at once after a failed connection.",
        )
        busy = idle = maximum = 0
        up = 1
        for engine, gate in existing_databases():
            pool = engine.sync_engine.pool
            busy += int(getattr(pool, "checkedout", lambda: 0)())
            idle += int(getattr(pool, "checkedin", lambda: 0)())
            size = int(getattr(pool, "size", lambda: 0)())
            maximum += size + max(int(getattr(pool, "_max_overflow", 0)), 0)
            if gate.shut:
                up = 0
        in_use.add_metric(["in_use"], busy)
        in_use.add_metric(["idle"], idle)
        limit.add_metric([], maximum)
        reachable.add_metric([], up)
        yield in_use
        yield limit
        yield reachable


REGISTRY.register(_PoolCollector())
