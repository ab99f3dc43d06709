"""A real call while the card service's database cannot be reached: the handler says
nothing about it and returns IVR_NEXT=unavailable, and Asterisk's dialplan plays the one
apology and its fallback (docs/faults.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend.db.engine import dispose_all
from backend.settings import reset_settings
from ivr.agi.channel import AgiChannel
from ivr.caller import Timeouts
from ivr.fake_asterisk import prompt_id
from ivr.scripts import SCRIPTS
from ivr.server import AgiServer
from tests.conftest import make_card_number, make_id_number, make_pin
from tests.e2e.conftest import E2EAsterisk

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

EVENING = "2026-11-27T20:00:00+08:00"  # a Friday evening: no agents on duty


@pytest.fixture
async def unreachable_database(tmp_path: Path) -> AsyncIterator[None]:
    """The application's database is a socket nobody listens on, for this test."""
    saved = os.environ.get("IVR_DATABASE_URL")
    os.environ["IVR_DATABASE_URL"] = (
        f"postgresql+asyncpg://ivr12333@/nowhere?host={tmp_path}&port=5432"
    )
    reset_settings()
    await dispose_all()
    yield
    await dispose_all()
    if saved is None:
        os.environ.pop("IVR_DATABASE_URL", None)
    else:
        os.environ["IVR_DATABASE_URL"] = saved
    reset_settings()


async def test_database_down_one_apology_then_the_hours(
    unreachable_database: None, e2e_asterisk: E2EAsterisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller keys card number, PIN and ID number to change the PIN; the database is
    down: no prompt from the handler after the last entry, IVR_NEXT=unavailable, then
    exactly one apology from the dialplan, the agents' hours and a goodbye, and Asterisk
    hangs up."""
    heard: list[str] = []
    stream_file, get_data = AgiChannel.stream_file, AgiChannel.get_data

    def noting_stream(self: AgiChannel, sound: str) -> bool:
        heard.append(prompt_id(sound))
        return stream_file(self, sound)

    def noting_get_data(self: AgiChannel, sound: str, *args: Any, **options: Any) -> Any:
        heard.append(prompt_id(sound))
        return get_data(self, sound, *args, **options)

    monkeypatch.setattr(AgiChannel, "stream_file", noting_stream)
    monkeypatch.setattr(AgiChannel, "get_data", noting_get_data)
    monkeypatch.setenv("IVR_NOW_OVERRIDE", EVENING)
    reset_settings()
    e2e_asterisk.set_clock(dt.datetime.fromisoformat(EVENING))
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=5000, entry_ms=6000))
    await server.start("127.0.0.1", e2e_asterisk.agi_ports[0])
    try:
        digits = make_card_number()[1:]
        # The PIN change on its own number: card number, PIN, ID number, then the check.
        keys = " ".join(
            [
                "wait:2",
                f"{digits}# wait:2",
                f"{make_pin()}# wait:2",
                f"{make_id_number().replace('X', '*')}# wait:25",
            ]
        )
        trace = await asyncio.to_thread(e2e_asterisk.call, keys, "123331", 90)
    finally:
        await server.drain()
        e2e_asterisk.set_clock(None)
    assert not server.errors, server.errors
    assert heard[-1] == "enter-id-number", heard
    assert trace.result.ended_by == "far-end", trace.result.summary()
    whats = trace.whats()
    assert whats[:3] == ["start change-pin", "agi success unavailable", "fallback"], whats
    assert [w.split()[0] for w in whats[3:]] == [
        "apology",
        "office-hours",
        "agent-hours",
        "goodbye",
    ]
    assert "office-hours closed" in whats
    returned, apology = trace.event("agi"), trace.event("fallback")
    assert returned is not None and apology is not None
    assert (apology.at - returned.at).total_seconds() < 1
