"""Counter services through the console: check, confirm, done (in-process)."""

from __future__ import annotations

import re

from backend.outcomes import Actor, CardState, Channel, Locked, PinChanged, WrongPin
from backend.services.cards import card_status
from backend.services.report_loss import report_loss_by_staff
from backend.services.verify import verify_pin
from tests.backend.by_phone import change_by_phone
from tests.conftest import IssuedCard, make_pin
from tests.console.conftest import Client

IVR = Actor(Channel.IVR, "counter-test-call")


async def _do(client: Client, action: str, card: IssuedCard) -> str:
    """Check the holder, then confirm; the result page's HTML."""
    await client.get("/counter")
    confirm = await client.post(
        "/counter/check",
        {
            "action": action,
            "card_number": card.card_number,
            "name": card.name,
            "id_number": card.id_number,
        },
    )
    assert "确认办理" in confirm.text, confirm.text
    token = re.search(r'name="token" value="([^"]+)"', confirm.text)
    assert token
    done = await client.post("/counter/confirm", {"action": action, "token": token.group(1)})
    return done.text


async def lock(card: IssuedCard) -> None:
    for _ in range(6):
        outcome = await verify_pin(card.digits, card.id_number, "000000", IVR)
    assert isinstance(outcome, Locked)


async def test_unlock_needs_confirmation_and_then_pin_works(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """The check alone changes nothing; the confirmed unlock lets the right PIN through."""
    clerk = await make_staff("clerk")
    pin = make_pin()
    card = await issue(pin=pin)
    await lock(card)
    await client.login(clerk)
    await client.get("/counter")
    confirm = await client.post(
        "/counter/check",
        {
            "action": "unlock",
            "card_number": card.card_number,
            "name": card.name,
            "id_number": card.id_number,
        },
    )
    assert "密码已锁定" in confirm.text
    assert (await card_status(card.card_number)).locked
    done = await _do(client, "unlock", card)
    assert "已办理：解锁" in done
    assert (await card_status(card.card_number)).state == CardState.ACTIVE
    new = make_pin()
    assert isinstance(await change_by_phone(card.digits, card.id_number, pin, new, IVR), PinChanged)


async def test_written_report_keeps_the_reference(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """A temporary report becomes written with the same reference."""
    clerk = await make_staff("clerk")
    card = await issue()
    agent = Actor(Channel.AGENT, "staff:someone")
    first = await report_loss_by_staff(card.card_number, card.id_number, agent)
    await client.login(clerk)
    done = await _do(client, "written-loss-report", card)
    assert first.reference in done  # type: ignore[union-attr]
    assert (await card_status(card.card_number)).state == CardState.LOST_WRITTEN


async def test_cancel_only_before_replacement(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """After a replacement the old card's report cannot be cancelled; a message says why."""
    clerk = await make_staff("clerk")
    card = await issue()
    await client.login(clerk)
    await _do(client, "written-loss-report", card)
    assert "已办理：补换卡" in await _do(client, "issue-replacement", card)
    assert (await card_status(card.card_number)).state == CardState.CANCELLED
    refused = await client.post(
        "/counter/check",
        {
            "action": "cancel-loss-report",
            "card_number": card.card_number,
            "name": card.name,
            "id_number": card.id_number,
        },
    )
    token = re.search(r'name="token" value="([^"]+)"', refused.text)
    assert token
    answer = await client.post(
        "/counter/confirm", {"action": "cancel-loss-report", "token": token.group(1)}
    )
    assert "没有有效的挂失登记" in answer.text


async def test_reset_pin_and_refusals(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """Reset brings back the initial PIN; unlocking an unlocked card is refused in words."""
    clerk = await make_staff("clerk")
    pin = make_pin()
    card = await issue(pin=pin)
    await client.login(clerk)
    assert "该卡密码未锁定" in await _do(client, "unlock", card)
    done = await _do(client, "reset-pin", card)
    assert "密码已重置为初始密码" in done
    assert (await card_status(card.card_number)).pin_is_initial
    wrong = await verify_pin(card.digits, card.id_number, pin, IVR)
    assert isinstance(wrong, WrongPin)


async def test_wrong_holder_and_bad_input_change_nothing(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """Another person's ID, a bad check digit or an unknown card each get a message."""
    clerk = await make_staff("clerk")
    card = await issue()
    other = await issue()
    await client.login(clerk)
    await client.get("/counter")
    base = {"action": "reset-pin", "card_number": card.card_number, "name": card.name}
    mismatch = await client.post("/counter/check", {**base, "id_number": other.id_number})
    assert "不一致" in mismatch.text and "确认办理" not in mismatch.text
    typo = card.id_number[:-1] + ("1" if card.id_number[-1] != "1" else "2")
    invalid = await client.post("/counter/check", {**base, "id_number": typo})
    assert invalid.status_code == 400 and "校验位" in invalid.text
    unknown = await client.post(
        "/counter/check", {**base, "card_number": "Z99999999", "id_number": card.id_number}
    )
    assert "没有这张卡" in unknown.text
    forged = await client.post("/counter/confirm", {"action": "reset-pin", "token": "made-up"})
    assert forged.status_code == 409 and "核验结果已失效" in forged.text
    assert (await card_status(card.card_number)).state == CardState.ACTIVE


async def test_another_clerks_token_is_useless(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """A confirmation token works only for the clerk who made the check."""
    first, second = await make_staff("clerk"), await make_staff("clerk")
    card = await issue()
    await client.login(first)
    await client.get("/counter")
    confirm = await client.post(
        "/counter/check",
        {
            "action": "reset-pin",
            "card_number": card.card_number,
            "name": card.name,
            "id_number": card.id_number,
        },
    )
    token = re.search(r'name="token" value="([^"]+)"', confirm.text)
    assert token
    await client.post("/logout", {})
    await client.login(second)
    await client.get("/counter")
    stolen = await client.post("/counter/confirm", {"action": "reset-pin", "token": token.group(1)})
    assert stolen.status_code == 409
