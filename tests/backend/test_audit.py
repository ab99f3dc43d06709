"""The audit trail: append-only in the database, and free of ID numbers and PINs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.db.engine import get_engine
from backend.masking import mask_card
from backend.outcomes import Actor, Channel
from backend.services.cards import check_holder
from backend.services.counter import reset_pin, unlock
from backend.services.report_loss import report_loss_by_staff
from backend.services.verify import verify_pin
from tests.backend.by_phone import change_by_phone, report_by_phone
from tests.conftest import USED_SECRETS, IssuedCard, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = 'edited'",
        "UPDATE audit_events SET outcome = 'edited' WHERE id = (SELECT max(id) FROM audit_events)",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)",
        "TRUNCATE audit_events",
    ],
)
async def test_audit_trail_is_append_only(issue: Issue, statement: str) -> None:
    """UPDATE, DELETE and TRUNCATE on audit_events are refused by the database."""
    await issue()
    count = text("SELECT count(*) FROM audit_events")
    async with get_engine().connect() as conn:
        before = (await conn.execute(count)).scalar_one()
    async with get_engine().connect() as conn:
        transaction = await conn.begin()
        try:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(statement))
        finally:
            await transaction.rollback()
    async with get_engine().connect() as conn:
        after = (await conn.execute(count)).scalar_one()
    assert after == before > 0


async def test_audit_rows_can_be_added(db: str) -> None:
    """Appending is what the trail is for: a plain INSERT works."""
    actor = f"probe-{uuid.uuid4().hex[:12]}"
    async with get_engine().begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_events (channel, actor, action, outcome)"
                " VALUES ('operator', :a, 'probe', 'ok')"
            ),
            {"a": actor},
        )
    async with get_engine().connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM audit_events WHERE actor = :a"), {"a": actor}
            )
        ).scalar_one()
    assert count == 1


async def test_no_audit_row_holds_an_id_number_or_a_pin(issue: Issue) -> None:
    """After every kind of action, no column of any audit row contains a used ID or PIN."""
    card = await issue()
    other = await issue(pin=make_pin())
    call = Actor(Channel.IVR, f"call-{uuid.uuid4().hex[:12]}")
    agent = Actor(Channel.AGENT, f"agent-{uuid.uuid4().hex[:12]}")
    clerk = Actor(Channel.COUNTER, f"clerk-{uuid.uuid4().hex[:12]}")
    new = make_pin()
    wrong = make_pin()
    await verify_pin(card.digits, card.id_number, "123456", call)
    await verify_pin(card.digits, card.id_number, wrong, call)
    await verify_pin(card.digits, other.id_number, "123456", call)
    await change_by_phone(card.digits, card.id_number, "123456", new, call)
    await change_by_phone(card.digits, card.id_number, new, "345678", call)
    await report_by_phone(card.digits, card.id_number, new, call)
    await report_by_phone(other.digits, other.id_number, other.pin, call)
    await check_holder(card.card_number, card.name, card.id_number, agent)
    await report_loss_by_staff(other.card_number, card.id_number, agent)
    await unlock(card.card_number, card.id_number, clerk)
    await reset_pin(other.card_number, other.id_number, clerk)
    USED_SECRETS.update({"345678", wrong})

    async with get_engine().connect() as conn:
        texts = [
            row[0]
            for row in await conn.execute(text("SELECT a::text FROM audit_events a ORDER BY id"))
        ]
    mine = [t for t in texts if any(a.actor_id in t for a in (call, agent, clerk))]
    assert len(mine) >= 11
    assert any(mask_card(card.card_number) in t for t in mine)
    secrets = sorted(USED_SECRETS | {card.id_number, other.id_number, new, other.pin, "123456"})
    pattern = re.compile(
        "|".join(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])" for s in secrets)
    )
    leaks = [(t, m.group(0)) for t in texts for m in [pattern.search(t)] if m]
    assert leaks == []
    for t in texts:
        assert card.digits not in t and other.digits not in t
