"""The console in headless Chromium, served by `ivr12333 console serve` on the test DB."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from backend.outcomes import Actor, CardState, Channel, Verified
from backend.services.cards import card_status
from backend.services.handoffs import record_handoff
from backend.services.verify import verify_pin
from tests.conftest import ROOT, TEST_DATA, make_pin
from tests.console.conftest import Account

pytestmark = pytest.mark.browser

# The README's pictures are rewritten only on request, so test runs leave the tree clean.
SHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("IVR_UPDATE_SCREENSHOTS") == "1"
    else TEST_DATA / "screenshots"
)


async def shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def log_in_by_keyboard(page: Page, account: Account) -> None:
    """Username has the focus; Tab to the password; Enter submits."""
    await page.goto("/login")
    await expect(page.get_by_label("用户名")).to_be_focused()
    await page.keyboard.type(account.username)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("密码")).to_be_focused()
    await page.keyboard.type(account.password)
    await page.keyboard.press("Enter")


async def test_agent_files_a_loss_report_for_a_transferred_call(page, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """Log in, find the call, check the caller, file the report, read the reference."""
    agent = await make_staff("agent")
    card = await issue(name="刘建国")
    call_id = f"1700000100.{secrets.randbelow(10**5)}"
    await record_handoff(
        call_id, "initial-pin-loss-report", "****" + card.digits[-4:], "13912345678"
    )

    await page.goto("/agent")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await log_in_by_keyboard(page, agent)
    await expect(page).to_have_url(re.compile(r"/agent$"))
    await expect(page.get_by_role("link", name=call_id)).to_be_visible()

    await page.get_by_label("来电编号").fill(call_id)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"来电 {call_id}")).to_be_visible()
    await expect(page.get_by_text("初始密码卡挂失，需人工核验")).to_be_visible()
    await expect(page.get_by_text("13912345678")).to_be_visible()

    await page.get_by_label("社会保障卡卡号").fill(card.card_number)
    await page.get_by_label("持卡人姓名").fill(card.name)
    await page.get_by_label("身份证号码").fill(card.id_number)
    await page.get_by_role("button", name="核验").click()
    await expect(page.get_by_role("heading", name="身份核验通过")).to_be_visible()
    await expect(page.get_by_role("button", name="登记挂失")).to_be_focused()
    await shoot(page, "agent")

    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="挂失已登记")).to_be_visible()
    reference = (await page.locator("#reference").inner_text()).strip()
    assert re.fullmatch(r"\d{12}", reference)

    status = await card_status(card.card_number)
    assert status.state == CardState.LOST_TEMPORARY
    assert status.active_loss_report is not None
    assert status.active_loss_report.reference == reference
    assert status.active_loss_report.channel == "agent"


async def test_clerk_unlocks_a_card_locked_by_wrong_pins(page, make_staff, issue, phone) -> None:  # type: ignore[no-untyped-def]
    """Six wrong PINs keyed over the IVR lock the card; after the clerk's confirmed unlock
    the caller changes the PIN by phone."""
    clerk = await make_staff("clerk")
    pin = make_pin()
    card = await issue(pin=pin, name="陈秀英")
    id_keys = card.id_number.replace("X", "*") + "#"
    for _ in range(6):
        heard = (await phone.call("change-pin", [f"{card.digits}#", "000000#", id_keys])).heard
    assert "card-locked" in heard
    assert (await card_status(card.card_number)).locked

    await log_in_by_keyboard(page, clerk)
    await expect(page).to_have_url(re.compile(r"/counter$"))
    await page.get_by_label("解锁（密码锁定）").check()
    await page.get_by_label("社会保障卡卡号").fill(card.card_number)
    await page.get_by_label("持卡人姓名").fill(card.name)
    await shoot(page, "clerk")
    await page.get_by_label("身份证号码").fill(card.id_number)
    await page.get_by_role("button", name="核验身份").click()

    await expect(page.get_by_role("heading", name="确认办理：解锁（密码锁定）")).to_be_visible()
    await expect(page.get_by_text("密码已锁定")).to_be_visible()
    assert (await card_status(card.card_number)).locked  # nothing happens before confirming
    await page.get_by_role("button", name="确认办理").click()
    await expect(page.get_by_role("heading", name="已办理：解锁（密码锁定）")).to_be_visible()
    await expect(page.locator("#card-state")).to_have_text("正常")
    assert not (await card_status(card.card_number)).locked

    new_pin = make_pin()
    keys = [f"{card.digits}#", f"{pin}#", id_keys, f"{new_pin}#", f"{new_pin}#"]
    transcript = await phone.call("change-pin", keys)
    assert "pin-changed" in transcript.heard
    ivr = Actor(Channel.IVR, f"call-{secrets.token_hex(4)}")
    assert isinstance(await verify_pin(card.digits, card.id_number, new_pin, ivr), Verified)


async def test_wrong_role_logged_out_and_missing_csrf_are_refused(page, make_staff) -> None:  # type: ignore[no-untyped-def]
    """An agent gets 403 in Chinese on a clerk page; a POST without token is refused."""
    agent = await make_staff("agent")
    await page.goto("/counter")
    await expect(page).to_have_url(re.compile(r"/login$"))

    await log_in_by_keyboard(page, agent)
    await expect(page).to_have_url(re.compile(r"/agent$"))
    response = await page.goto("/counter")
    assert response is not None and response.status == 403
    await expect(page.get_by_text("您的角色（坐席）无权使用此页面。")).to_be_visible()

    # Same browser, same session cookie, but no token in the form.
    refused = await page.request.post("/logout", form={})
    assert refused.status == 403
    assert "安全校验码" in await refused.text()
    response = await page.goto("/agent")
    assert response is not None and response.status == 200
