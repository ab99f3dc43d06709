"""The caller's time on each self-service flow's happy path (`make cx`).

Each flow's happy path runs as one call through the real FastAGI server and the real flows
(`ivr.simulator`), against a throwaway PostgreSQL cluster made in a temporary folder, on a
fresh card. The events of the call and the built sounds (`<data dir>/sounds`, built first
when out of date) give its time two ways, both with a person's pace at each entry (2 s to
think, 0.4 s a key, `#` included; an entry ended by silence adds its timeout):

- listening to every prompt in full;
- keying over every prompt that allows it: an interruptible prompt (a GET DATA prompt, a
  STREAM FILE with escape digits) costs nothing when only interruptible prompts and pauses
  stand between it and the next entry.

Pauses (Wait) count in both. The caller hangs up at the first entry after the happy path's
keys; that entry's own prompt counts only where the path says it is listened to.

    python -m bench.cx [--json results.json] [--sounds DIR] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ivr.fake_asterisk import SILENCE, Asked, CallEvent, Heard, Keyed, Missing, Paused


@dataclass(frozen=True)
class HappyPath:
    name: str
    # One key group per entry (as `ivr12333 simulate --keys`), with {card} (the card's
    # digits), {id} (the ID number, X keyed as *), {pin} (its PIN) and {new_pin}.
    keys: str
    # A prompt heard only when the flow succeeded.
    success: str
    # Whether the caller listens to the prompt of the entry where they hang up.
    hear_last: bool
    goal_listening: float
    goal_keying: float | None


# The happy path of each flow, for a card on a PIN of the holder's own. Update the keys
# when a flow's entries change order.
HAPPY_PATHS: tuple[HappyPath, ...] = (
    HappyPath(
        "change PIN",
        "2 {card}# {pin}# {id}# {new_pin}# {new_pin}#",
        success="pin-changed",
        hear_last=False,
        goal_listening=75,
        goal_keying=45,
    ),
    HappyPath(
        "loss report",
        "1 {card}# {pin}# {id}# 1",
        success="loss-reported",
        hear_last=True,  # the offer to hear the reference again
        goal_listening=60,
        goal_keying=40,
    ),
    HappyPath(
        "card status",
        "3 {card}# {pin}# {id}#",
        success="status-intro",
        hear_last=False,
        goal_listening=45,
        goal_keying=None,
    ),
)

THINK_SECONDS = 2.0  # before each entry
KEY_SECONDS = 0.4  # each key pressed
# The moment the calls are placed (a working-day morning): the same loss reference shape
# and office hours on every run.
CALL_MOMENT = "2026-12-02T10:30:00+08:00"
LONGEST_SHOWN = 6
CARD_SEED = 12333


class NotBuilt(Exception):
    """A prompt heard has no built sound, so its length is unknown."""


@dataclass(frozen=True)
class PromptTime:
    id: str
    seconds: float
    interruptible: bool
    # Keyed over (costs nothing) when the caller keys over what allows it.
    skipped_keying: bool


@dataclass(frozen=True)
class CallTime:
    listening: float
    keying_over: float
    prompts: tuple[PromptTime, ...]
    pauses: float
    entries: int
    keys: int
    # Timeouts of entries ended by silence.
    waiting: float

    @property
    def prompt_seconds(self) -> float:
        return round(sum(p.seconds for p in self.prompts), 3)


def _answered(events: Sequence[CallEvent], index: int) -> bool:
    return index + 1 < len(events) and isinstance(events[index + 1], Keyed)


def _until_hang_up(events: Sequence[CallEvent], hear_last: bool) -> list[CallEvent]:
    """The events up to the first entry left unanswered (the caller hangs up there),
    with that entry's prompt when the caller listens to it."""
    for index, event in enumerate(events):
        if isinstance(event, Asked) and not _answered(events, index):
            kept = list(events[:index])
            own = kept[-1] if kept else None
            if not hear_last and isinstance(own, Heard) and own.prompt == event.prompt:
                kept.pop()
            return kept
    return list(events)


def _keyed_over(events: Sequence[CallEvent], index: int) -> bool:
    """Whether the interruptible prompt at `index` leads, through interruptible prompts and
    pauses only, to an entry the caller answers."""
    for later in range(index + 1, len(events)):
        event = events[later]
        if isinstance(event, Asked):
            return _answered(events, later)
        if isinstance(event, Paused) or (isinstance(event, Heard) and event.interruptible):
            continue
        return False
    return False


def _entry_seconds(asked: Asked, group: str) -> tuple[float, int, float]:
    """(seconds, keys pressed, seconds of timeout) of one entry."""
    if group == SILENCE:
        return THINK_SECONDS + asked.timeout_ms / 1000, 0, asked.timeout_ms / 1000
    digits = group.rstrip("#")
    wait = 0.0
    if not group.endswith("#") and len(digits) < asked.max_digits:
        wait = asked.timeout_ms / 1000  # ended by silence after the last key
    return THINK_SECONDS + KEY_SECONDS * len(group) + wait, len(group), wait


def call_time(
    events: Sequence[CallEvent], seconds: Callable[[str], float | None], *, hear_last: bool
) -> CallTime:
    """The happy path's time from its events and each prompt's length."""
    heard = _until_hang_up(events, hear_last)
    prompts: list[PromptTime] = []
    pauses = entry_time = waiting = 0.0
    entries = keys = 0
    asked: Asked | None = None
    for index, event in enumerate(heard):
        if isinstance(event, Heard):
            length = seconds(event.prompt)
            if length is None:
                raise NotBuilt(f"prompt {event.prompt} is not built")
            skipped = event.interruptible and _keyed_over(heard, index)
            prompts.append(PromptTime(event.prompt, length, event.interruptible, skipped))
        elif isinstance(event, Missing):
            raise NotBuilt(f"prompt {event.prompt} is missing")
        elif isinstance(event, Paused):
            pauses += event.seconds
        elif isinstance(event, Asked):
            asked = event
        elif isinstance(event, Keyed) and asked is not None:
            spent, pressed, waited = _entry_seconds(asked, event.group)
            entry_time += spent
            waiting += waited
            entries += 1
            keys += pressed
    listened = sum(p.seconds for p in prompts)
    kept = sum(p.seconds for p in prompts if not p.skipped_keying)
    return CallTime(
        listening=round(listened + pauses + entry_time, 3),
        keying_over=round(kept + pauses + entry_time, 3),
        prompts=tuple(prompts),
        pauses=round(pauses, 3),
        entries=entries,
        keys=keys,
        waiting=round(waiting, 3),
    )


# -- running the happy paths ---------------------------------------------------------------


@dataclass
class FlowResult:
    path: HappyPath
    time: CallTime
    how: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def over_goal(self) -> list[str]:
        missed = []
        if self.time.listening > self.path.goal_listening:
            missed.append("listening")
        goal = self.path.goal_keying
        if goal is not None and self.time.keying_over > goal:
            missed.append("keying over")
        return missed


class HappyPathFailed(Exception):
    """The call did not go the happy way (a flow's entries changed: update HAPPY_PATHS)."""


@dataclass(frozen=True)
class TestCard:
    card_number: str
    id_number: str
    pin: str
    new_pin: str

    def values(self) -> dict[str, str]:
        return {
            "card": self.card_number[1:],
            "id": self.id_number.replace("X", "*"),
            "pin": self.pin,
            "new_pin": self.new_pin,
        }


def _random_pin(id_number: str, card_number: str, *, old: str | None = None) -> str:
    from backend import idnumber, pinrules

    while True:
        pin = f"{secrets.randbelow(1_000_000):06d}"
        rule = pinrules.broken_rule(
            pin,
            old_pin=old,
            birth_date=idnumber.birth_date(id_number),
            id_number=id_number,
            card_number=card_number[1:],
        )
        if rule is None:
            return pin


async def issue_test_card(rng: random.Random) -> TestCard:
    """A fresh card on a PIN of its own, with numbers no other card has. The card's digits
    are read back on a loss report, so a seeded `rng` gives the same call time each run."""
    from backend import idnumber
    from backend.errors import DuplicateCard
    from backend.outcomes import Actor, Channel
    from backend.services.cards import issue_card

    while True:
        body = f"110105{rng.randint(1950, 2000)}{rng.randint(1, 12):02d}"
        body += f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
        id_number = body + idnumber.check_char(body)
        card_number = f"C{rng.randint(10_000_000, 99_999_999)}"
        pin = _random_pin(id_number, card_number)
        try:
            await issue_card(card_number, id_number, "测试", Actor(Channel.OPERATOR, "cx"), pin=pin)
        except DuplicateCard:
            continue
        new_pin = _random_pin(id_number, card_number, old=pin)
        return TestCard(card_number, id_number, pin, new_pin)


def describe(event: CallEvent, seconds: Callable[[str], float | None]) -> dict[str, Any]:
    """An event for the record; keys are counted, never kept (they hold PINs)."""
    if isinstance(event, Heard):
        return {
            "event": "prompt",
            "id": event.prompt,
            "seconds": seconds(event.prompt),
            "interruptible": event.interruptible,
        }
    if isinstance(event, Asked):
        return {
            "event": "input",
            "prompt": event.prompt,
            "max_digits": event.max_digits,
            "timeout_ms": event.timeout_ms,
        }
    if isinstance(event, Keyed):
        ended = "silence" if event.group == SILENCE else "#" if event.group[-1:] == "#" else ""
        return {"event": "keys", "count": len(event.group.rstrip(SILENCE)), "ended_by": ended}
    if isinstance(event, Paused):
        return {"event": "pause", "seconds": event.seconds}
    return {"event": "missing", "id": event.prompt}


async def run_happy_path(
    path: HappyPath, seconds: Callable[[str], float | None], rng: random.Random
) -> FlowResult:
    """One call down `path` on a fresh card; raises HappyPathFailed if it strays."""
    from ivr.contract import SCRIPT_MAIN
    from ivr.simulator import place_call

    card = await issue_test_card(rng)
    keys = path.keys.format(**card.values()).split()
    events: list[CallEvent] = []
    call = await place_call(SCRIPT_MAIN, keys=keys, observer=events.append)
    if call.errors:
        raise HappyPathFailed(f"{path.name}: the flow failed: {call.errors[0].message}")
    heard = [e.prompt for e in events if isinstance(e, Heard)]
    answered = sum(isinstance(e, Keyed) for e in events)
    if path.success not in heard or answered != len(keys) or call.how != "caller-hangup":
        raise HappyPathFailed(
            f"{path.name}: not the happy path ({answered} of {len(keys)} entries keyed, "
            f"{path.success} {'heard' if path.success in heard else 'never heard'}, "
            f"ended {call.how}); prompts: {' '.join(heard)}"
        )
    time = call_time(events, seconds, hear_last=path.hear_last)
    return FlowResult(path, time, call.how, [describe(e, seconds) for e in events])


async def measure(
    seconds: Callable[[str], float | None],
    paths: Sequence[HappyPath] = HAPPY_PATHS,
    rng: random.Random | None = None,
) -> list[FlowResult]:
    """Every happy path, one after the other, on the configured database (cards from `rng`,
    by default unpredictable ones)."""
    from backend.db.engine import dispose_all

    cards = rng or random.SystemRandom()
    try:
        return [await run_happy_path(path, seconds, cards) for path in paths]
    finally:
        await dispose_all()


# -- the report ------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def report(results: Sequence[FlowResult], catalogue: Sequence[tuple[str, float]]) -> list[str]:
    """The table of call times against the goals, and the longest prompts."""
    lines = [
        f"Happy-path call time ({THINK_SECONDS:g} s before each entry, {KEY_SECONDS:g} s a key)",
        "",
        f"{'flow':<12} {'listening':>9} {'goal':>6}   {'keying over':>11} {'goal':>6}  "
        f" {'prompts':>8} {'pauses':>7} {'entries':>7} {'keys':>5}",
    ]
    for result in results:
        t, p = result.time, result.path
        mark_l = "!" if "listening" in result.over_goal else " "
        mark_k = "!" if "keying over" in result.over_goal else " "
        goal_k = "-" if p.goal_keying is None else f"{p.goal_keying:g} s"
        lines.append(
            f"{p.name:<12} {_s(t.listening):>9} {p.goal_listening:>4g} s {mark_l} "
            f"{_s(t.keying_over):>11} {goal_k:>6} {mark_k} "
            f"{_s(t.prompt_seconds):>8} {_s(t.pauses):>7} {t.entries:>7} {t.keys:>5}"
        )
    lines.append("(! over the goal)")
    on_paths: dict[str, float] = {}
    for result in results:
        for prompt in result.time.prompts:
            on_paths[prompt.id] = prompt.seconds
    lines += ["", "Longest prompts on the happy paths:"]
    for pid, length in sorted(on_paths.items(), key=lambda kv: -kv[1])[:LONGEST_SHOWN]:
        lines.append(f"  {length:5.1f} s  {pid}")
    lines += ["", "Longest prompts in the catalogue:"]
    for pid, length in catalogue[:LONGEST_SHOWN]:
        lines.append(f"  {length:5.1f} s  {pid}")
    return lines


def catalogue_lengths(seconds: Callable[[str], float | None]) -> list[tuple[str, float]]:
    """Every built prompt of the catalogue, longest first."""
    from prompts.catalogue import PROMPTS

    found = [(pid, seconds(pid)) for pid in PROMPTS]
    return sorted(((pid, s) for pid, s in found if s is not None), key=lambda kv: -kv[1])


def as_json(results: Sequence[FlowResult], catalogue: Sequence[tuple[str, float]]) -> str:
    body = {
        "think_seconds": THINK_SECONDS,
        "key_seconds": KEY_SECONDS,
        "flows": [
            {
                "flow": r.path.name,
                "listening": r.time.listening,
                "keying_over": r.time.keying_over,
                "goal_listening": r.path.goal_listening,
                "goal_keying": r.path.goal_keying,
                "over_goal": r.over_goal,
                "prompt_seconds": r.time.prompt_seconds,
                "pauses": r.time.pauses,
                "entries": r.time.entries,
                "keys": r.time.keys,
                "waiting": r.time.waiting,
                "prompts": [asdict(p) for p in r.time.prompts],
                "events": r.events,
            }
            for r in results
        ],
        "longest_prompts": [{"id": pid, "seconds": s} for pid, s in catalogue],
    }
    return json.dumps(body, ensure_ascii=False, indent=1)


# -- a throwaway database ----------------------------------------------------------------------


def _throwaway_environment(folder: Path) -> Any:
    """Start a PostgreSQL cluster in `folder` and point this process's settings at it,
    with a pepper of its own and the bench's call moment. Returns the cluster."""
    from backend.migrate import upgrade
    from backend.pgcluster import LocalCluster
    from backend.settings import reset_settings

    # Unix socket only, in the folder: the port number just names the socket.
    cluster = LocalCluster(folder / "pg", 54339, secrets_home=folder)
    os.environ["IVR_ENV"] = "test"  # fsync off: nothing here outlives the run
    cluster.start()
    cluster.ensure_database()
    os.environ.update(
        IVR_DATABASE_URL=cluster.url(),
        IVR_PIN_PEPPER=secrets.token_urlsafe(32),
        IVR_NOW_OVERRIDE=CALL_MOMENT,
    )
    os.environ.pop("IVR_PIN_PEPPER_FILE", None)
    os.environ.setdefault("IVR_LOG_FILE", str(folder / "cx.log"))
    reset_settings()
    upgrade(cluster.url())
    return cluster


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cx", description=__doc__)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--sounds", type=Path, help="built prompts (default <data dir>/sounds)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    from backend.logsetup import configure_logging
    from backend.settings import get_settings
    from ivr.simulator import built_prompts

    with tempfile.TemporaryDirectory(prefix="ivr12333-cx-") as tmp:
        cluster = _throwaway_environment(Path(tmp))
        try:
            configure_logging("warning", get_settings().log_file, stream=None)
            seconds = built_prompts(args.sounds)
            try:
                # A database of its own: the same cards, so the same times, every run.
                results = asyncio.run(measure(seconds, rng=random.Random(CARD_SEED)))
            except (HappyPathFailed, NotBuilt) as exc:
                print(f"bench.cx: {exc}", file=sys.stderr)
                return 1
        finally:
            cluster.stop()
    catalogue = catalogue_lengths(seconds)
    print("\n".join(report(results, catalogue)))
    if args.json:
        args.json.write_text(as_json(results, catalogue) + "\n", encoding="utf-8")
    missed = any(r.over_goal for r in results)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
