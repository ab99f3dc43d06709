"""Reading the database the way a test judges an outcome."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from backend.db.engine import get_engine
from backend.outcomes import Actor, Channel, Verified
from backend.services.verify import verify_pin

CHECK = Actor(Channel.OPERATOR, "test-check")


async def pin_works(digits: str, id_number: str, pin: str) -> bool:
    return isinstance(await verify_pin(digits, id_number, pin, CHECK), Verified)


async def reports(card_number: str) -> list[Any]:
    async with get_engine().connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT r.reference, r.channel, r.status FROM loss_reports r "
                "JOIN cards c ON c.id = r.card_id WHERE c.card_number = :n"
            ),
            {"n": card_number},
        )
        return list(rows)


async def audit_rows(actor_id: str) -> list[Any]:
    async with get_engine().connect() as conn:
        rows = await conn.execute(
            text("SELECT action, outcome, detail FROM audit_events WHERE actor = :a ORDER BY id"),
            {"a": actor_id},
        )
        return list(rows)


def id_keys(id_number: str) -> str:
    """How a caller keys an ID number: X as *, then #."""
    return id_number.replace("X", "*") + "#"
