"""After every other test: no PIN and no full ID number reached PostgreSQL's or the app's log."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable

import pytest

from backend.outcomes import Actor, Channel, Verified, WrongPin
from backend.services.verify import verify_pin
from tests.conftest import APP_LOG, TEST_CLUSTER, USED_SECRETS, IssuedCard, make_pin

pytestmark = pytest.mark.last

Issue = Callable[..., Awaitable[IssuedCard]]

# `%m [%p] `: the time with milliseconds and zone, then the server process id.
_PG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] ")


# Times with microseconds, as bound parameters (`2026-11-27 10:03:42.113772+00`) or in
# JSON: their fraction is six digits and would match a six-digit PIN by chance.
_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d+(?:[+-]\d\d(?::?\d\d)?|Z)?")


def without_times(line: str) -> str:
    return _TIME.sub("<time>", line)


def token_pattern(secrets: Iterable[str]) -> re.Pattern[str]:
    """Any of the secrets as a whole token: not inside a longer run of letters or digits."""
    alternatives = "|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def pg_log_lines() -> list[str]:
    """The test cluster's log, each line without its time and process id."""
    text = TEST_CLUSTER.logfile.read_text(encoding="utf-8", errors="replace")
    return [without_times(_PG_PREFIX.sub("", line)) for line in text.splitlines()]


def app_log_lines() -> list[str]:
    """The application's JSON log lines, each without its timestamp."""
    lines = []
    for raw in APP_LOG.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            lines.append(raw)
            continue
        if isinstance(event, dict):
            event.pop("timestamp", None)
        lines.append(without_times(json.dumps(event, ensure_ascii=False)))
    return lines


def test_token_pattern_matches_whole_tokens_only() -> None:
    """A secret matches on its own or between punctuation, never inside a longer number."""
    pattern = token_pattern({"583920", "11010519491231002X"})
    assert pattern.search("parameters: $1 = '583920'")
    assert pattern.search('{"pin": 583920}')
    assert pattern.search("id 11010519491231002X.")
    assert not pattern.search("reference 260915839201")
    assert not pattern.search("card A1583920")
    assert not pattern.search("110105********002X")


def test_times_are_not_taken_for_pins() -> None:
    """A bound timestamp's microseconds are not a PIN; a PIN beside a time still is."""
    pattern = token_pattern({"113772"})
    assert not pattern.search(without_times("$2 = '2026-11-27 10:03:42.113772+00'"))
    assert not pattern.search(without_times('"at": "2026-11-27T10:03:42.113772Z"'))
    assert pattern.search(without_times("$2 = '2026-11-27 10:03:42.5+00', $3 = '113772'"))


async def test_logs_hold_no_pin_and_no_id_number(issue: Issue) -> None:
    """Every PIN and ID number the tests used is absent from both logs, 123456 included."""
    # Some traffic of this test's own, so the scan never runs over empty logs.
    card = await issue(pin=make_pin())
    wrong = make_pin()
    while wrong == card.pin:
        wrong = make_pin()
    # Letters only: a hex id with eight digits in a row would be masked as a card number.
    letters = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:12])
    actor = Actor(Channel.IVR, f"scan-{letters}")
    assert await verify_pin(card.digits, card.id_number, wrong, actor) == WrongPin(5)
    assert isinstance(await verify_pin(card.digits, card.id_number, card.pin, actor), Verified)

    pg = pg_log_lines()
    app = app_log_lines()
    assert len(pg) > 100
    assert any("UPDATE cards" in line for line in pg)
    assert any("INSERT INTO audit_events" in line for line in pg)
    assert any("parameters:" in line for line in pg), "statements are logged with parameters"
    assert app
    assert any(actor.actor_id in line for line in app)

    secrets = set(USED_SECRETS) | {card.pin, wrong, card.id_number}
    assert len(secrets) >= 3  # at least this test's own PIN, wrong PIN and ID number
    pattern = token_pattern(secrets)
    pg_leaks = [(line, m.group(0)) for line in pg if (m := pattern.search(line))]
    assert pg_leaks == []
    app_leaks = [(line, m.group(0)) for line in app if (m := pattern.search(line))]
    assert app_leaks == []
    initial = token_pattern({"123456"})
    assert [line for line in pg if initial.search(line)] == []
