"""Flows over the real FastAGI server (in-process, real loopback socket), called by the
scripted fake Asterisk, against the test database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from backend.settings import reset_settings
from ivr.caller import Timeouts
from ivr.fake_asterisk import Transcript, run_call
from ivr.registry import SCRIPTS, load_flows
from ivr.server import AgiServer

# Friday 27 November 2026: a working day.
OPEN = "2026-11-27T10:00:00+08:00"
LUNCH = "2026-11-27T12:30:00+08:00"
EVENING = "2026-11-27T20:00:00+08:00"
NATIONAL_DAY = "2026-10-01T10:00:00+08:00"  # a public holiday
MAKE_UP_SUNDAY = "2026-09-20T10:00:00+08:00"  # a Sunday worked for the National Day break


@dataclass
class Phone:
    server: AgiServer
    port: int

    async def call(self, script: str, keys: Sequence[str], **options: Any) -> Transcript:
        transcript = await run_call("127.0.0.1", self.port, script, keys, **options)
        assert not self.server.errors, self.server.errors
        return transcript


@pytest.fixture
async def phone(db: str) -> AsyncIterator[Phone]:
    """The real server with the real flows on a free port; no flow may raise."""
    load_flows()
    server = AgiServer(SCRIPTS, timeouts=Timeouts(menu_ms=3000, entry_ms=3000))
    port = await server.start("127.0.0.1", 0)
    yield Phone(server, port)
    await server.drain()
    assert not server.errors, server.errors


@pytest.fixture
def clock() -> Iterator[Any]:
    """Set the moment the service believes it is: `clock(OPEN)`."""

    def set_now(moment: str) -> None:
        os.environ["IVR_NOW_OVERRIDE"] = moment
        reset_settings()

    set_now(OPEN)
    yield set_now
    os.environ.pop("IVR_NOW_OVERRIDE", None)
    reset_settings()
