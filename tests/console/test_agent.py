"""The agent's call screen: hand-offs, holder checks, the loss report (in-process)."""

from __future__ import annotations

import re
import secrets

from backend.outcomes import CardState
from backend.services.audit_query import AuditFilter, search_audit
from backend.services.cards import card_status
from backend.services.handoffs import find_handoff, record_handoff
from tests.console.conftest import Client


def new_call_id() -> str:
    return f"1700000000.{secrets.randbelow(10**6)}"


async def _agent_on_call(client: Client, make_staff, issue):  # type: ignore[no-untyped-def]
    agent = await make_staff("agent")
    card = await issue()
    call_id = new_call_id()
    await record_handoff(
        call_id, "initial-pin-loss-report", "****" + card.digits[-4:], "13800138000"
    )
    await client.login(agent)
    return agent, card, call_id


async def test_handoff_is_listed_and_found_by_call_id(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """A recorded hand-off shows in the list and the lookup box leads to its screen."""
    _agent, card, call_id = await _agent_on_call(client, make_staff, issue)
    listing = await client.get("/agent")
    assert call_id in listing.text
    found = await client.get("/agent/lookup", params={"call_id": call_id})
    assert found.status_code == 303
    screen = await client.get(found.headers["location"])
    assert "初始密码卡挂失" in screen.text and "13800138000" in screen.text
    assert "****" + card.digits[-4:] in screen.text
    missing = await client.get("/agent/lookup", params={"call_id": "no-such-call"})
    assert missing.status_code == 404 and "没有找到这个来电编号" in missing.text


async def test_record_handoff_never_stores_a_full_card_number(db) -> None:  # type: ignore[no-untyped-def]
    """A full card number passed by mistake is stored masked."""
    call_id = new_call_id()
    await record_handoff(call_id, "caller-asked", "12345678", None)
    stored = await find_handoff(call_id)
    assert stored is not None and stored.card_masked == "****5678"


async def test_check_then_report_gives_a_reference(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """A right check unlocks the report; the card is then lost, reported by the agent."""
    agent, card, call_id = await _agent_on_call(client, make_staff, issue)
    await client.get(f"/agent/calls/{call_id}")
    checked = await client.post(
        f"/agent/calls/{call_id}/check",
        {"card_number": card.card_number, "name": card.name, "id_number": card.id_number},
    )
    assert "身份核验通过" in checked.text and "登记挂失" in checked.text
    token = re.search(r'name="token" value="([^"]+)"', checked.text)
    assert token
    reported = await client.post(f"/agent/calls/{call_id}/report", {"token": token.group(1)})
    reference = re.search(r'id="reference">(\d{12})<', reported.text)
    assert reference, reported.text
    status = await card_status(card.card_number)
    assert status.state == CardState.LOST_TEMPORARY
    assert status.active_loss_report is not None
    assert status.active_loss_report.reference == reference.group(1)
    assert status.active_loss_report.channel == "agent"
    trail = await search_audit(AuditFilter(actor=agent.username, action="call-report-loss"))
    assert [(e.channel, e.detail) for e in trail.events] == [
        ("agent", {"call_id": call_id, "reference": reference.group(1)})
    ]
    # The token is spent: a replayed POST files nothing and says so.
    again = await client.post(f"/agent/calls/{call_id}/report", {"token": token.group(1)})
    assert again.status_code == 409 and "核验结果已失效" in again.text


async def test_three_failed_checks_close_the_form(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """After three failed checks the call refuses any more, even a right one."""
    _agent, card, call_id = await _agent_on_call(client, make_staff, issue)
    await client.get(f"/agent/calls/{call_id}")
    wrong = {"card_number": card.card_number, "name": "李四", "id_number": card.id_number}
    for _ in range(3):
        failed = await client.post(f"/agent/calls/{call_id}/check", wrong)
        assert "不一致" in failed.text
    assert "核验失败已达 3 次" in failed.text
    right = {**wrong, "name": card.name}
    refused = await client.post(f"/agent/calls/{call_id}/check", right)
    assert refused.status_code == 403 and "身份核验通过" not in refused.text


async def test_bad_id_number_gets_a_message_and_counts_nothing(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """A wrong check digit is explained and is not a failed check."""
    _agent, card, call_id = await _agent_on_call(client, make_staff, issue)
    await client.get(f"/agent/calls/{call_id}")
    last = "0" if card.id_number[-1] != "0" else "1"
    typo = card.id_number[:-1] + last
    response = await client.post(
        f"/agent/calls/{call_id}/check",
        {"card_number": card.card_number, "name": card.name, "id_number": typo},
    )
    assert response.status_code == 400 and "校验位" in response.text
    assert "已核验失败" not in response.text
    bad_card = await client.post(
        f"/agent/calls/{call_id}/check",
        {"card_number": "12-34", "name": card.name, "id_number": card.id_number},
    )
    assert "卡号格式不正确" in bad_card.text
    assert (await card_status(card.card_number)).state == CardState.ACTIVE


async def test_second_report_returns_the_first_reference(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """A card already reported lost gets no second report: the old reference is read out."""
    _agent, card, call_id = await _agent_on_call(client, make_staff, issue)
    references = []
    for _ in range(2):
        await client.get(f"/agent/calls/{call_id}")
        checked = await client.post(
            f"/agent/calls/{call_id}/check",
            {"card_number": card.card_number, "name": card.name, "id_number": card.id_number},
        )
        token = re.search(r'name="token" value="([^"]+)"', checked.text)
        assert token
        done = await client.post(f"/agent/calls/{call_id}/report", {"token": token.group(1)})
        found = re.search(r'id="reference">(\d{12})<', done.text)
        assert found
        references.append(found.group(1))
    assert references[0] == references[1]
    assert "该卡此前已办理挂失" in done.text
