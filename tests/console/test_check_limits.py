"""Limits on failed holder checks through the console: the agent's per call, under
concurrent requests, and the clerk's own."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import text

from backend.db.engine import get_engine
from backend.masking import mask_card
from backend.services.handoffs import record_handoff
from backend.settings import get_settings
from console.config import get_console_settings
from tests.console.conftest import Client


async def _outcomes(call_id: str) -> list[str]:
    async with get_engine().connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT outcome FROM audit_events WHERE action = 'call-check'"
                " AND detail->>'call_id' = :c ORDER BY id"
            ),
            {"c": call_id},
        )
        return [r.outcome for r in rows]


async def _failed_holder_checks(card_number: str) -> int:
    """Holder checks that were looked up and matched nothing, for this card."""
    async with get_engine().connect() as conn:
        count = await conn.execute(
            text(
                "SELECT count(*) FROM audit_events WHERE action = 'check-holder'"
                " AND outcome = 'no-match' AND card_masked = :m"
            ),
            {"m": mask_card(card_number)},
        )
        return int(count.scalar_one())


async def test_twenty_concurrent_wrong_checks_run_at_most_the_limit(  # type: ignore[no-untyped-def]
    client: Client, make_staff, issue
) -> None:
    """20 simultaneous wrong checks on one call: only `call_check_limit` are checked and
    recorded as failures, the rest are refused; a right check afterwards is refused too."""
    limit = get_console_settings().call_check_limit
    agent = await make_staff("agent")
    card = await issue()
    call_id = f"1700000001.{secrets.randbelow(10**6)}"
    await record_handoff(call_id, "caller-asked", None, "13800138000")
    await client.login(agent)
    await client.get(f"/agent/calls/{call_id}")
    wrong = {"card_number": card.card_number, "name": "李四", "id_number": card.id_number}
    responses = await asyncio.gather(
        *(client.post(f"/agent/calls/{call_id}/check", wrong) for _ in range(20))
    )
    outcomes = await _outcomes(call_id)
    assert outcomes.count("no-match") == limit
    assert outcomes.count("refused-limit") == 20 - limit
    assert await _failed_holder_checks(card.card_number) == limit
    assert sum(r.status_code == 200 for r in responses) == limit
    assert sum(r.status_code == 403 for r in responses) == 20 - limit
    right = {**wrong, "name": card.name}
    refused = await client.post(f"/agent/calls/{call_id}/check", right)
    assert refused.status_code == 403 and "身份核验通过" not in refused.text


async def test_a_clerk_past_the_limit_is_told_and_checks_nothing(  # type: ignore[no-untyped-def]
    client: Client, make_staff, issue
) -> None:
    """After `identity_staff_limit` mismatching checks the clerk's next check, even a right
    one, is refused with a message saying why and looks nothing up."""
    clerk = await make_staff("clerk")
    card = await issue()
    await client.login(clerk)
    await client.get("/counter")
    wrong = {
        "action": "unlock",
        "card_number": card.card_number,
        "name": "李四",
        "id_number": card.id_number,
    }
    for _ in range(get_settings().identity_staff_limit):
        failed = await client.post("/counter/check", wrong)
        assert failed.status_code == 200 and "不一致" in failed.text
    refused = await client.post("/counter/check", {**wrong, "name": card.name})
    assert refused.status_code == 429 and "暂停核验" in refused.text
    assert "确认办理" not in refused.text
    assert await _failed_holder_checks(card.card_number) == get_settings().identity_staff_limit
