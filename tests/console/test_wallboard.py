"""The supervisor's wallboard (in-process) after known calls through the real FastAGI
server, its date range, the queue figures read from Asterisk's output, and the console's
own /metrics, /healthz and /readyz."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from console.queue import QueueFigures, parse_queue_show
from ivr import callstats
from tests import known_calls
from tests.conftest import Phone
from tests.console.conftest import Client


def figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found, element_id
    return found.group(1)


def table_sums(html: str) -> list[int]:
    """The data table's columns summed over every hour row."""
    sums = [0] * 6
    for cells in re.findall(r'<tr><th scope="row">\d\d</th>((?:<td>\d+</td>)+)</tr>', html):
        for i, n in enumerate(re.findall(r"\d+", cells)):
            sums[i] += int(n)
    return sums


async def test_wallboard_counts_the_known_calls(  # type: ignore[no-untyped-def]
    client: Client, make_staff, phone: Phone, issue
) -> None:
    """Before and after six known calls today: the totals, the served share's parts, the
    hand-off bar and the hourly table's columns grow by exactly the calls."""
    boss = await make_staff("supervisor")
    await client.login(boss)
    before = (await client.get("/supervisor/wallboard")).text
    with known_calls.server_settings():
        await known_calls.place(phone.port, issue)
        await callstats.flush()
    page = await client.get("/supervisor/wallboard")
    assert page.status_code == 200
    after = page.text
    calls = known_calls.expected_total(known_calls.CALLS)
    assert int(figure(after, "total-calls")) == int(figure(before, "total-calls")) + calls
    assert int(figure(after, "handed-over")) == int(figure(before, "handed-over")) + 1
    assert '<meta http-equiv="refresh" content="15">' in after
    assert after.count('<svg class="chart"') == 5
    assert "转人工原因" in after and "来电人要求人工服务：" in after
    # served, agent, hung_up, ended, failed, shutdown
    grown = [a - b for a, b in zip(table_sums(after), table_sums(before), strict=True)]
    assert grown == [2, 1, 1, 2, 0, 0]
    assert "script" not in after and "src=" not in after  # nothing fetched, no script


async def test_past_days_and_bad_ranges(client: Client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """A range of past days counts by day, with no refresh and no queue; a range ending
    before it starts, longer than 92 days, or not a date gets a message and status 400."""
    boss = await make_staff("supervisor")
    await client.login(boss)
    page = await client.get(
        "/supervisor/wallboard", params={"since": "2020-03-01", "until": "2020-03-07"}
    )
    assert page.status_code == 200
    assert "看板（2020-03-01 至 2020-03-07）" in page.text
    assert figure(page.text, "total-calls") == "0"
    assert "http-equiv" not in page.text and "queue-waiting" not in page.text
    assert ">03-07</text>" in page.text  # one column per day
    for params in (
        {"since": "2020-03-07", "until": "2020-03-01"},
        {"since": "2020-01-01", "until": "2020-12-31"},
        {"since": "yesterday"},
    ):
        bad = await client.get("/supervisor/wallboard", params=params)
        assert bad.status_code == 400, params
        assert "日期范围不正确" in bad.text


async def test_only_supervisors_see_the_wallboard(client: Client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """An agent is refused the wallboard; without login it is the login page."""
    anonymous = await client.get("/supervisor/wallboard")
    assert anonymous.status_code == 303
    agent = await make_staff("agent")
    await client.login(agent)
    assert (await client.get("/supervisor/wallboard")).status_code == 403


# `queue show` as Asterisk 22 prints it (header shortened; trailing blanks as printed).
QUEUE_SHOW = (
    "ivr12333-agents has 2 calls (max unlimited) in 'rrmemory' strategy "
    "(4s holdtime, 80s talktime), W:0, C:3, A:1, SL:0.0%, SL2:0.0% within 0s\n"
    "   Members: \n"
    "      agent1 (PJSIP/agent1) (ringinuse disabled) (dynamic) (In use) has taken 3 calls\n"
    "   Callers: \n"
    "      1. PJSIP/sipp-00000004 (wait: 0:42, prio: 0)\n"
    "      2. PJSIP/sipp-00000005 (wait: 1:03:07, prio: 0)\n\n"
)


def test_queue_show_is_read() -> None:
    """Callers waiting and the longest wait (m:ss and h:mm:ss forms) come from the queue's
    own lines; an empty queue is 0 and 0; another queue's output is not taken for it."""
    assert parse_queue_show(QUEUE_SHOW) == QueueFigures(2, 3787)
    empty = "ivr12333-agents has 0 calls (max unlimited) in 'rrmemory' strategy\n   No Callers\n"
    assert parse_queue_show(empty) == QueueFigures(0, 0)
    assert parse_queue_show("other has 3 calls (max unlimited)\n") is None
    assert parse_queue_show("No such queue: 'ivr12333-agents'\n") is None


async def test_console_metrics_health_and_readiness(client: Client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """Without login: /healthz 200, /readyz 200 "ready" with the database up, /metrics in
    Prometheus' format, where a wrong password counts once as a failed login."""

    def failed_logins(text: str) -> float:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "ivr12333_console_failed_logins_total" and sample.labels == {
                    "reason": "wrong_password"
                }:
                    return sample.value
        raise AssertionError("no failed-login counter")

    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    before = failed_logins((await client.get("/metrics")).text)
    clerk = await make_staff("clerk")
    await client.get("/login")
    refused = await client.post("/login", {"username": clerk.username, "password": "wrong-pw-12"})
    assert refused.status_code in (200, 400, 401)
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert failed_logins(metrics.text) == before + 1


async def test_console_readiness_says_why(client: Client, monkeypatch: Any) -> None:
    """While the server drains, /readyz is 503 "not ready: draining"."""
    from console.routes import health

    monkeypatch.setattr(health, "draining", lambda: True)
    response = await client.get("/readyz")
    assert (response.status_code, response.text) == (503, "not ready: draining\n")
