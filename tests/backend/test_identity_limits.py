"""Limits on card and ID numbers that match nothing: per card and per caller by phone, per
call and per agent, per clerk at the counter; reserved before the look-up, given back on a
match, with an alarm when a budget runs out and a pause that ends with its window."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.errors import InvalidInput
from backend.masking import mask_card
from backend.outcomes import (
    Actor,
    Channel,
    Done,
    NoMatch,
    Paused,
    Refused,
    TooManyTries,
    Verified,
    WrongPin,
)
from backend.services.cards import check_holder
from backend.services.counter import unlock
from backend.services.identity import CallCheck
from backend.services.verify import verify_pin
from backend.settings import get_settings, reset_settings
from tests.conftest import APP_LOG, IssuedCard, make_id_number, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]


def _call() -> Actor:
    return Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")


def _staff(channel: Channel) -> Actor:
    return Actor(channel, f"staff:{channel}-{uuid.uuid4().hex[:8]}")


def _phone_number() -> str:
    return f"139{random.randint(0, 99_999_999):08d}"


def _unused_digits() -> str:
    return f"{random.randint(10_000_000, 99_999_999)}"


async def alarms(card_masked: str) -> list[dict[str, Any]]:
    """The alarm rows raised for this (masked) card."""
    async with get_engine().connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT detail FROM audit_events WHERE action = 'identity-limit'"
                " AND outcome = 'limit-reached' AND card_masked = :m ORDER BY id"
            ),
            {"m": card_masked},
        )
        return [dict(r.detail) for r in rows]


def warnings_logged(card_masked: str) -> list[dict[str, Any]]:
    """The application log's warnings that a limit was reached, for this card."""
    found = []
    for line in APP_LOG.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("event") == "identity_limit_reached" and record.get("card") == card_masked:
            found.append(record)
    return found


@pytest.fixture
def an_hour_later(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Call it to move the service's clock one window and a minute ahead."""

    def move() -> None:
        minutes = get_settings().identity_window_minutes + 1
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
        monkeypatch.setenv("IVR_NOW_OVERRIDE", later.isoformat())
        reset_settings()

    yield move
    monkeypatch.undo()
    reset_settings()


async def test_wrong_id_numbers_pause_the_card_by_phone_for_one_window(
    issue: Issue, an_hour_later: Callable[[], None]
) -> None:
    """`identity_card_limit` wrong ID numbers for one card: each answered NoMatch, the last
    raises one alarm (audit row and warning); then even the holder is paused by phone until
    the window has passed, and then proves the card."""
    limit = get_settings().identity_card_limit
    card = await issue(pin=make_pin())
    masked = mask_card(card.digits)
    for _ in range(limit):
        assert await verify_pin(card.digits, make_id_number(), card.pin, _call()) == NoMatch()
    paused = TooManyTries(Paused.CARD)
    assert await verify_pin(card.digits, make_id_number(), card.pin, _call()) == paused
    assert await verify_pin(card.digits, card.id_number, card.pin, _call()) == paused
    assert await alarms(masked) == [
        {"paused": "card", "attempts": limit, "window_minutes": 60},
    ]
    logged = warnings_logged(masked)
    assert len(logged) == 1 and logged[0]["level"] == "warning"
    an_hour_later()
    assert isinstance(await verify_pin(card.digits, card.id_number, card.pin, _call()), Verified)


async def test_concurrent_wrong_id_numbers_never_pass_the_card_limit(issue: Issue) -> None:
    """40 simultaneous wrong ID numbers for one card: exactly `identity_card_limit` are
    looked up (NoMatch), the rest refused, and the alarm is raised once."""
    limit = get_settings().identity_card_limit
    card = await issue()
    answers = await asyncio.gather(
        *(verify_pin(card.digits, make_id_number(), "123456", _call()) for _ in range(40))
    )
    assert answers.count(NoMatch()) == limit
    assert answers.count(TooManyTries(Paused.CARD)) == 40 - limit
    assert len(await alarms(mask_card(card.digits))) == 1


async def test_a_match_gives_its_attempt_back(issue: Issue) -> None:
    """Right card and ID number do not count against the card's budget, even with a wrong
    PIN (the PIN lockout counts those): after limit-1 wrong IDs and several matches, one
    more wrong ID is still answered."""
    limit = get_settings().identity_card_limit
    card = await issue(pin=make_pin())
    wrong_pin = make_pin()
    while wrong_pin == card.pin:
        wrong_pin = make_pin()
    for _ in range(limit - 1):
        await verify_pin(card.digits, make_id_number(), card.pin, _call())
    assert await verify_pin(card.digits, card.id_number, wrong_pin, _call()) == WrongPin(5)
    for _ in range(3):
        assert isinstance(
            await verify_pin(card.digits, card.id_number, card.pin, _call()), Verified
        )
    assert await verify_pin(card.digits, make_id_number(), card.pin, _call()) == NoMatch()
    paused = await verify_pin(card.digits, make_id_number(), card.pin, _call())
    assert paused == TooManyTries(Paused.CARD)


async def test_malformed_entries_count_nothing(issue: Issue) -> None:
    """Malformed card digits or ID numbers are refused before any attempt is reserved."""
    limit = get_settings().identity_card_limit
    card = await issue()
    broken = card.id_number[:-1] + ("0" if card.id_number[-1] != "0" else "1")
    for _ in range(limit + 5):
        with pytest.raises(InvalidInput):
            await verify_pin(card.digits, broken, "123456", _call())
    for _ in range(limit):
        assert await verify_pin(card.digits, make_id_number(), "123456", _call()) == NoMatch()


async def test_one_caller_number_is_limited_across_cards(issue: Issue) -> None:
    """`identity_caller_limit` wrong numbers from one phone number, each for a different
    card: then that number is paused for any card, while another number and a withheld one
    are still answered."""
    limit = get_settings().identity_caller_limit
    number = _phone_number()
    for _ in range(limit):
        outcome = await verify_pin(_unused_digits(), make_id_number(), "123456", _call(), number)
        assert outcome == NoMatch()
    card = await issue()
    paused = await verify_pin(card.digits, card.id_number, "123456", _call(), number)
    assert paused == TooManyTries(Paused.CALLER)
    other = await verify_pin(card.digits, card.id_number, "123456", _call(), _phone_number())
    assert isinstance(other, Verified)
    assert isinstance(await verify_pin(card.digits, card.id_number, "123456", _call()), Verified)


async def test_a_card_paused_by_phone_is_still_served_at_the_counter_and_by_an_agent(
    issue: Issue,
) -> None:
    """Counter clerks (in person) and agents (their own budget) still find the holder of a
    card a stranger paused by phone; the clerk can unlock it."""
    limit = get_settings().identity_card_limit
    card = await issue(pin=make_pin())
    for _ in range(limit + 1):
        await verify_pin(card.digits, make_id_number(), card.pin, _call())
    assert await verify_pin(card.digits, card.id_number, card.pin, _call()) == TooManyTries(
        Paused.CARD
    )
    clerk = _staff(Channel.COUNTER)
    checked = await check_holder(card.card_number, card.name, card.id_number, clerk)
    assert isinstance(checked, Verified)
    assert await unlock(card.card_number, card.id_number, clerk) == Refused("not-locked")
    agent = _staff(Channel.AGENT)
    on_call = CallCheck(f"call-{uuid.uuid4().hex[:8]}", 3, _phone_number())
    checked = await check_holder(card.card_number, card.name, card.id_number, agent, call=on_call)
    assert isinstance(checked, Verified)


async def test_a_clerk_is_limited_with_an_alarm(issue: Issue) -> None:
    """30 simultaneous mismatching checks by one clerk: `identity_staff_limit` are looked
    up, the rest refused; one alarm; another clerk is not affected."""
    limit = get_settings().identity_staff_limit
    card = await issue()
    clerk = _staff(Channel.COUNTER)
    answers = await asyncio.gather(
        *(check_holder(card.card_number, card.name, make_id_number(), clerk) for _ in range(30))
    )
    assert answers.count(NoMatch()) == limit
    assert answers.count(TooManyTries(Paused.STAFF)) == 30 - limit
    alarm = [a for a in await alarms(mask_card(card.card_number)) if a["paused"] == "staff"]
    assert len(alarm) == 1
    refused = await unlock(card.card_number, card.id_number, clerk)
    assert refused == TooManyTries(Paused.STAFF)
    other = await check_holder(card.card_number, card.name, card.id_number, _staff(Channel.COUNTER))
    assert isinstance(other, Verified)


async def test_an_agents_checks_on_one_call_never_pass_its_limit(issue: Issue) -> None:
    """20 simultaneous mismatching checks on one call: exactly the call's limit are looked
    up; the rest are refused for the call, and so is a right check afterwards. Another call
    is not affected."""
    card = await issue()
    agent = _staff(Channel.AGENT)
    on_call = CallCheck(f"call-{uuid.uuid4().hex[:8]}", 3, None)
    answers = await asyncio.gather(
        *(
            check_holder(card.card_number, "李四", card.id_number, agent, call=on_call)
            for _ in range(20)
        )
    )
    assert answers.count(NoMatch()) == 3
    assert answers.count(TooManyTries(Paused.CALL)) == 17
    right = await check_holder(card.card_number, card.name, card.id_number, agent, call=on_call)
    assert right == TooManyTries(Paused.CALL)
    next_call = CallCheck(f"call-{uuid.uuid4().hex[:8]}", 3, None)
    again = await check_holder(card.card_number, card.name, card.id_number, agent, call=next_call)
    assert isinstance(again, Verified)


async def test_refused_counter_services_change_nothing(issue: Issue) -> None:
    """A clerk whose budget ran out cannot unlock: the card stays locked."""
    card = await issue(pin=make_pin())
    wrong = make_pin()
    while wrong == card.pin:
        wrong = make_pin()
    for _ in range(get_settings().lockout_limit):
        await verify_pin(card.digits, card.id_number, wrong, _call())
    clerk = _staff(Channel.COUNTER)
    for _ in range(get_settings().identity_staff_limit):
        await check_holder(card.card_number, card.name, make_id_number(), clerk)
    assert await unlock(card.card_number, card.id_number, clerk) == TooManyTries(Paused.STAFF)
    done = await unlock(card.card_number, card.id_number, _staff(Channel.COUNTER))
    assert isinstance(done, Done) and not done.card.locked


async def test_the_limits_are_settings(issue: Issue, monkeypatch: pytest.MonkeyPatch) -> None:
    """IVR_IDENTITY_CARD_LIMIT=2: the third wrong ID number for a card is refused."""
    monkeypatch.setenv("IVR_IDENTITY_CARD_LIMIT", "2")
    reset_settings()
    try:
        card = await issue()
        answers = [
            await verify_pin(card.digits, make_id_number(), "123456", _call()) for _ in range(3)
        ]
        assert answers == [NoMatch(), NoMatch(), TooManyTries(Paused.CARD)]
    finally:
        monkeypatch.undo()
        reset_settings()
