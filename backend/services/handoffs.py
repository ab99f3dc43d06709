"""Calls the IVR hands to the agent queue, so that the agent's screen can show them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert

from backend.db.tables import handoffs
from backend.errors import InvalidInput
from backend.masking import scrub
from backend.outcomes import Actor, Channel
from backend.services import common

MAX_CALL_ID = 64


@dataclass(frozen=True)
class HandoffView:
    call_id: str
    reason: str
    card_masked: str | None
    caller_number: str | None
    created_at: dt.datetime


def check_call_id(text: str) -> str:
    call_id = text.strip()
    if not call_id or len(call_id) > MAX_CALL_ID or not call_id.isprintable():
        raise InvalidInput("call-id", "a call id is 1-64 printable characters")
    return call_id


def _view(row: Row[Any]) -> HandoffView:
    return HandoffView(
        call_id=row.call_id,
        reason=row.reason,
        card_masked=row.card_masked,
        caller_number=row.caller_number,
        created_at=row.created_at,
    )


async def record_handoff(
    call_id: str, reason: str, card_masked: str | None, caller_number: str | None
) -> HandoffView:
    """Record (or refresh, if the caller comes back to the queue) the call's hand-off."""
    call = check_call_id(call_id)
    # Defence in depth: whatever the IVR passes, a full card number never gets stored.
    masked = scrub(card_masked) if card_masked else None
    values = {"reason": reason, "card_masked": masked, "caller_number": caller_number or None}
    async with common.transaction() as conn:
        row = (
            await conn.execute(
                insert(handoffs)
                .values(call_id=call, **values)
                .on_conflict_do_update(index_elements=["call_id"], set_=values)
                .returning(handoffs)
            )
        ).one()
        await common.audit(
            conn, Actor(Channel.IVR, call), "handoff", reason, masked, {"call_id": call}
        )
    return _view(row)


async def find_handoff(call_id: str) -> HandoffView | None:
    call = check_call_id(call_id)
    async with common.transaction() as conn:
        row = (await conn.execute(select(handoffs).where(handoffs.c.call_id == call))).first()
    return None if row is None else _view(row)


async def recent_handoffs(limit: int = 20) -> list[HandoffView]:
    async with common.transaction() as conn:
        rows = (
            await conn.execute(
                select(handoffs)
                .order_by(handoffs.c.created_at.desc(), handoffs.c.call_id)
                .limit(max(1, min(limit, 200)))
            )
        ).all()
    return [_view(row) for row in rows]


# Holder checks made during a call are audited with the call id (the limit on them is an
# attempt counter, reserved before each check).
CALL_CHECK = "call-check"
CALL_CHECK_FAILED = "no-match"


async def audit_call(
    actor: Actor, action: str, outcome: str, card_masked: str | None, call_id: str, **detail: Any
) -> None:
    await common.audit_alone(actor, action, outcome, card_masked, call_id=call_id, **detail)
