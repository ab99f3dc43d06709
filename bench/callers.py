"""A population of callers who slip, through the real server and flows (`make callers`).

Each simulated caller wants one thing (change the PIN, report the card lost, hear its
status) and makes at most one of the slips callers make: a forgotten `#`, the card's letter
keyed as a digit, the ID's `X` keyed as 0, a typo in the ID, two different new PINs, a weak
new PIN, a wrong menu key, silence at the first entry, a wrong PIN once. Some who report a
loss still have the initial PIN. A caller answers each prompt as a person who listened
would: the slip once, then what the prompt asks for; told a card on its initial PIN cannot
report a loss by itself, they set a PIN and report it after.

Every outcome is judged in PostgreSQL (the PIN works, the report exists) or by the status
heard, on a throwaway cluster, at a moment in office hours. Printed: the share served
without an agent, by flow and by slip.

    python -m bench.callers [--callers 150] [--seed 12333]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.cx import TestCard, _random_pin, _throwaway_environment, issue_test_card

GOALS = ("change PIN", "loss report", "card status")
SLIPS = (
    "none",
    "forgot #",
    "letter as digit",
    "X as 0",
    "ID typo",
    "new PINs differ",
    "weak new PIN",
    "wrong menu key",
    "silence",
    "wrong PIN once",
)
MENU_KEY = {"change PIN": "2", "loss report": "1", "card status": "3"}
# Of the callers reporting a loss, this share still has the initial PIN.
INITIAL_PIN_SHARE = 0.3


@dataclass
class Caller:
    """One simulated person: what they want, their card, their one slip."""

    goal: str
    slip: str
    card: TestCard
    pin: str  # the PIN the caller believes the card has
    slipped: set[str] = field(default_factory=set)
    done: bool = False  # the caller heard their goal met

    def _once(self, slip: str) -> bool:
        """True the first time the caller's own slip applies here."""
        if self.slip == slip and slip not in self.slipped:
            self.slipped.add(slip)
            return True
        return False

    async def answer(self, prompt: str, max_digits: int, timeout_ms: int) -> str:
        """What the caller keys after `prompt`."""
        card = self.card.card_number[1:]
        id_keys = self.card.id_number.replace("X", "*")
        if prompt == "card-menu":
            if self.done:
                return "!"
            return "5" if self._once("wrong menu key") else MENU_KEY[self.goal]
        if prompt == "enter-card-number":
            if self._once("silence"):
                return "-"
            if self._once("letter as digit"):
                return f"1{card}#"
            return card if self._once("forgot #") else f"{card}#"
        if prompt in ("enter-pin", "enter-pin-again"):
            if self._once("wrong PIN once"):
                return f"{_random_pin(self.card.id_number, self.card.card_number)}#"
            return f"{self.pin}#"
        if prompt == "enter-id-number":
            if self.card.id_number.endswith("X") and self._once("X as 0"):
                return f"{self.card.id_number[:-1]}0#"
            if self._once("ID typo"):
                typo = str((int(id_keys[5]) + 1) % 10)
                return f"{id_keys[:5]}{typo}{id_keys[6:]}#"
            return f"{id_keys}#"
        if prompt in ("enter-new-pin-rules", "enter-new-pin"):
            return "147258#" if self._once("weak new PIN") else f"{self.card.new_pin}#"
        if prompt == "enter-new-pin-again":
            if self._once("new PINs differ"):
                return f"{_random_pin(self.card.id_number, self.card.card_number)}#"
            return f"{self.card.new_pin}#"
        if prompt == "loss-confirm":
            return "1"
        if prompt.startswith("loss-initial-pin-choices"):
            return "2"  # set a PIN of one's own now, then report
        if prompt == "after-service":
            return "!" if self.done else "*"
        return "-"  # the offer to hear the reference again, and anything unexpected

    def heard(self, prompt: str) -> None:
        if prompt == "pin-changed":
            self.pin = self.card.new_pin
            self.done = self.done or self.goal == "change PIN"
        elif prompt in ("loss-reported", "loss-already-reported"):
            self.done = self.done or self.goal == "loss report"
        elif prompt == "status-intro":
            self.done = self.done or self.goal == "card status"


async def _initial_pin_card(rng: random.Random) -> TestCard:
    """A card still on 123456: issued with a PIN, then reset by a counter clerk."""
    from backend.outcomes import Actor, Channel
    from backend.services.counter import reset_pin

    card = await issue_test_card(rng)
    await reset_pin(card.card_number, card.id_number, Actor(Channel.OPERATOR, "callers"))
    return TestCard(card.card_number, card.id_number, "123456", card.new_pin)


async def _served(caller: Caller) -> bool:
    """Judged in the database where the goal changes it."""
    from backend.outcomes import Actor, Channel, Verified
    from backend.services.verify import verify_pin

    if caller.goal == "card status":
        return caller.done
    if caller.goal == "change PIN":
        check = Actor(Channel.OPERATOR, "callers-check")
        card = caller.card
        outcome = await verify_pin(card.card_number[1:], card.id_number, card.new_pin, check)
        return isinstance(outcome, Verified)
    from sqlalchemy import text

    from backend.db.engine import get_engine

    async with get_engine().connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM loss_reports r JOIN cards c ON c.id = r.card_id "
                "WHERE c.card_number = :n"
            ),
            {"n": caller.card.card_number},
        )
    return bool(count)


@dataclass(frozen=True)
class Outcome:
    goal: str
    slip: str
    initial_pin: bool
    served: bool
    how: str
    slipped: bool  # the slip happened (an X as 0 needs an ID ending in X)


async def place(caller: Caller, number: str) -> Outcome:
    from ivr.contract import SCRIPT_MAIN
    from ivr.fake_asterisk import CallEvent, Heard
    from ivr.simulator import place_call

    def observe(event: CallEvent) -> None:
        if isinstance(event, Heard):
            caller.heard(event.prompt)

    call = await place_call(
        SCRIPT_MAIN, key_source=caller.answer, observer=observe, caller_number=number
    )
    if call.errors:
        raise RuntimeError(f"the flow failed: {call.errors[0].message}")
    served = await _served(caller) and call.how != "agent"
    initial = caller.card.pin == "123456"
    return Outcome(caller.goal, caller.slip, initial, served, call.how, bool(caller.slipped))


async def population(count: int, rng: random.Random) -> list[Outcome]:
    outcomes = []
    for n in range(count):
        goal, slip = GOALS[n % len(GOALS)], SLIPS[(n // len(GOALS)) % len(SLIPS)]
        initial = goal == "loss report" and rng.random() < INITIAL_PIN_SHARE
        card = await (_initial_pin_card(rng) if initial else issue_test_card(rng))
        caller = Caller(goal, slip, card, card.pin)
        # A number per caller: the per-number identity budget is not what is measured.
        outcomes.append(await place(caller, f"139{rng.randint(10_000_000, 99_999_999)}"))
    return outcomes


def _share(outcomes: list[Outcome]) -> str:
    served = sum(o.served for o in outcomes)
    return f"{100 * served / len(outcomes):5.1f} % ({served}/{len(outcomes)})"


def report(outcomes: list[Outcome]) -> list[str]:
    lines = [f"Served without an agent: {_share(outcomes)}", ""]
    for goal in GOALS:
        lines.append(f"  {goal:<16}{_share([o for o in outcomes if o.goal == goal])}")
    initial = [o for o in outcomes if o.initial_pin]
    if initial:
        lines.append(f"  {'  initial PIN':<16}{_share(initial)}")
    lines.append("")
    for slip in SLIPS:
        made = [o for o in outcomes if o.slip == slip and (o.slipped or slip == "none")]
        if made:
            lines.append(f"  {slip:<16}{_share(made)}")
    ends = Counter(o.how for o in outcomes if not o.served)
    if ends:
        lines += [
            "",
            "Not served, by how the call ended: " + ", ".join(f"{k} {v}" for k, v in ends.items()),
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callers", description=__doc__)
    parser.add_argument("--callers", type=int, default=150)
    parser.add_argument("--seed", type=int, default=12333)
    args = parser.parse_args(argv)

    from backend.logsetup import configure_logging
    from backend.settings import get_settings

    with tempfile.TemporaryDirectory(prefix="ivr12333-callers-") as tmp:
        cluster = _throwaway_environment(Path(tmp))
        try:
            configure_logging("warning", get_settings().log_file, stream=None)
            outcomes = asyncio.run(population(args.callers, random.Random(args.seed)))
        finally:
            cluster.stop()
    print("\n".join(report(outcomes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
