"""Bursts of concurrent PIN guesses on one card: how many are hashed, what each is told, and
what the audit trail says about each.

Every guess comes from its own call (its own actor), so its audit row can be told apart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from backend import secrethash
from backend.db.engine import get_engine
from backend.errors import ServiceUnavailable
from backend.outcomes import Actor, Channel, Locked, NoMatch, Verified, WrongPin
from backend.services.verify import verify_pin
from backend.settings import get_settings
from tests.conftest import IssuedCard, make_id_number, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]
BURST = 30


def _call() -> Actor:
    return Actor(Channel.IVR, f"guess-{uuid.uuid4().hex[:12]}")


def _wrong_pin_for(card: IssuedCard) -> str:
    while True:
        pin = make_pin()
        if pin != card.pin:
            return pin


@dataclass
class HashCount:
    """PIN checks that reached argon2, and (when gated) a gate they wait at first."""

    calls: int = 0
    gate: asyncio.Event | None = None
    right: list[bool] = field(default_factory=list)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[HashCount]:
    """Counts every argon2 PIN verification (backend.secrethash.pin_matches)."""
    count = HashCount()
    real = secrethash.pin_matches

    async def counted(stored: str, pin: str) -> bool:
        count.calls += 1
        if count.gate is not None:
            await count.gate.wait()
        matched = await real(stored, pin)
        count.right.append(matched)
        return matched

    monkeypatch.setattr(secrethash, "pin_matches", counted)
    yield count


async def card_row(card_number: str) -> Any:
    async with get_engine().connect() as conn:
        return (
            await conn.execute(
                text("SELECT failed_attempts, locked FROM cards WHERE card_number = :n"),
                {"n": card_number},
            )
        ).one()


async def audit_of(actor: Actor) -> list[tuple[str, str, dict[str, Any]]]:
    async with get_engine().connect() as conn:
        rows = await conn.execute(
            text("SELECT action, outcome, detail FROM audit_events WHERE actor = :a ORDER BY id"),
            {"a": actor.actor_id},
        )
        return [(r.action, r.outcome, dict(r.detail)) for r in rows]


async def test_a_burst_of_wrong_pins_hashes_only_the_limit(issue: Issue, hashes: HashCount) -> None:
    """30 simultaneous wrong PINs: exactly `lockout_limit` reach argon2, the card is locked
    with the count at the limit, and every guess is told WrongPin or Locked."""
    limit = get_settings().lockout_limit
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    answers = await asyncio.gather(
        *(verify_pin(card.digits, card.id_number, wrong, _call()) for _ in range(BURST))
    )
    assert hashes.calls == limit
    left = [a.attempts_left for a in answers if isinstance(a, WrongPin)]
    assert len(set(left)) == len(left) and set(left) <= set(range(1, limit))
    assert sum(isinstance(a, Locked) for a in answers) == BURST - len(left)
    row = await card_row(card.card_number)
    assert (row.failed_attempts, row.locked) == (limit, True)


async def test_the_right_pin_in_a_burst_is_told_and_audited_like_the_others(
    issue: Issue, hashes: HashCount
) -> None:
    """29 wrong PINs and the right one at once, the checks held until every guess that will
    not be checked has been answered: exactly `lockout_limit` hashes; the right PIN either
    proves the card (only when its own guess was the one that locked it) or is answered and
    audited exactly as some wrong guess was."""
    limit = get_settings().lockout_limit
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    hashes.gate = asyncio.Event()
    actors = [_call() for _ in range(BURST)]
    pins = [wrong] * BURST
    pins[BURST // 2] = card.pin
    tasks = [
        asyncio.create_task(verify_pin(card.digits, card.id_number, pin, actor))
        for pin, actor in zip(pins, actors, strict=True)
    ]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if hashes.calls >= limit and sum(t.done() for t in tasks) >= BURST - hashes.calls:
            break
        await asyncio.sleep(0.01)
    hashes.gate.set()
    answers = await asyncio.gather(*tasks)

    assert hashes.calls == limit
    right_at = BURST // 2
    right_answer = answers[right_at]
    others = [a for n, a in enumerate(answers) if n != right_at]
    assert all(isinstance(a, WrongPin | Locked) for a in others)
    row = await card_row(card.card_number)
    if isinstance(right_answer, Verified):
        # Its own guess took the last try and locked the card; its success clears that lock.
        assert (row.failed_attempts, row.locked) == (0, False)
    else:
        assert right_answer == Locked()
        assert (row.failed_attempts, row.locked) == (limit, True)
        right_audit = await audit_of(actors[right_at])
        wrong_audits = [await audit_of(a) for n, a in enumerate(actors) if n != right_at]
        assert right_audit in wrong_audits


async def test_a_locked_card_answers_every_guess_alike_without_hashing(
    issue: Issue, hashes: HashCount
) -> None:
    """Once locked, the right PIN and wrong ones get the same answer and the same audit row,
    and none of them is hashed."""
    limit = get_settings().lockout_limit
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    for _ in range(limit):
        await verify_pin(card.digits, card.id_number, wrong, _call())
    before = hashes.calls
    actors = [_call() for _ in range(10)]
    pins = [card.pin if n % 2 == 0 else wrong for n in range(10)]
    answers = await asyncio.gather(
        *(verify_pin(card.digits, card.id_number, p, a) for p, a in zip(pins, actors, strict=True))
    )
    assert answers == [Locked()] * 10
    assert hashes.calls == before
    audits = [await audit_of(a) for a in actors]
    assert all(audit == audits[0] for audit in audits)


async def test_no_match_never_hashes(issue: Issue, hashes: HashCount) -> None:
    """An unknown card or another holder's ID is answered without any argon2 work."""
    card = await issue()
    other = await issue()
    assert await verify_pin(card.digits, other.id_number, "123456", _call()) == NoMatch()
    assert await verify_pin(card.digits, make_id_number(), "123456", _call()) == NoMatch()
    assert await verify_pin("87654321", card.id_number, "123456", _call()) == NoMatch()
    assert hashes.calls == 0


async def test_a_guess_refused_by_busy_hashing_does_not_count(
    issue: Issue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the hashing queue is full the guess is refused unchecked (ServiceUnavailable)
    and its reserved attempt given back, even the one that would have locked the card."""
    limit = get_settings().lockout_limit
    card = await issue(pin=make_pin())
    wrong = _wrong_pin_for(card)
    for _ in range(limit - 1):
        await verify_pin(card.digits, card.id_number, wrong, _call())

    async def busy(stored: str, pin: str) -> bool:
        raise secrethash.HashingBusy("pin hashing is busy; try again shortly")

    monkeypatch.setattr(secrethash, "pin_matches", busy)
    with pytest.raises(ServiceUnavailable):
        await verify_pin(card.digits, card.id_number, card.pin, _call())
    row = await card_row(card.card_number)
    assert (row.failed_attempts, row.locked) == (limit - 1, False)
    monkeypatch.undo()
    assert isinstance(await verify_pin(card.digits, card.id_number, card.pin, _call()), Verified)
