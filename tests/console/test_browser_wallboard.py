"""The wallboard in headless Chromium, served by `ivr12333 console serve`, after a known
set of calls through the real FastAGI server and the fake Asterisk."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from ivr import callstats
from tests import known_calls
from tests.conftest import Phone
from tests.console.test_browser import log_in_by_keyboard, shoot

pytestmark = pytest.mark.browser


async def _figure(page: Page, element_id: str) -> int:
    return int((await page.locator(f"#{element_id}").inner_text()).strip())


async def test_wallboard_after_known_calls(page: Page, make_staff, phone: Phone, issue) -> None:  # type: ignore[no-untyped-def]
    """A supervisor opens the wallboard from the menu by keyboard; after six known calls
    the page (reloading itself) shows six more calls, one more hand-off, the five charts
    drawn, and the past-days form gives a per-day chart."""
    boss = await make_staff("supervisor")
    await log_in_by_keyboard(page, boss)
    await expect(page).to_have_url(re.compile(r"/supervisor/audit$"))
    await page.get_by_role("link", name="实时看板").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("实时看板")
    total_before = await _figure(page, "total-calls")
    handed_before = await _figure(page, "handed-over")

    with known_calls.server_settings():
        await known_calls.place(phone.port, issue)
        await callstats.flush()

    # The page refreshes itself every 15 s; wait for that rather than reloading.
    calls = known_calls.expected_total(known_calls.CALLS)
    await expect(page.locator("#total-calls")).to_have_text(
        str(total_before + calls), timeout=25_000
    )
    assert await _figure(page, "handed-over") == handed_before + 1
    charts = page.get_by_role("img")
    await expect(charts).to_have_count(5)
    for name in (
        "来电按小时及结果",
        "来电结果占比",
        "转人工原因",
        "密码锁定（按渠道）",
        "挂失登记（按渠道）",
    ):
        await expect(page.get_by_role("img", name=name)).to_be_visible()
    share = (await page.locator("#served-share").inner_text()).strip()
    assert re.fullmatch(r"\d{1,3}%", share), share
    await shoot(page, "wallboard")

    await page.get_by_label("起始日期").fill("2026-11-23")
    await page.get_by_label("截止日期").fill("2026-11-29")
    await page.get_by_role("button", name="查看").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "看板（2026-11-23 至 2026-11-29）"
    )
    await expect(page.get_by_role("img", name="来电按日期及结果")).to_be_visible()
