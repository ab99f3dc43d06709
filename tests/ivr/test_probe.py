"""Health checks connect to the FastAGI port and close: quietly, and calls go on."""

from __future__ import annotations

import asyncio
import json

import pytest

from prompts.catalogue import Prompt
from tests.conftest import APP_LOG
from tests.ivr.conftest import Line


@pytest.mark.usefixtures("database_url")  # the application log file is configured
async def test_connect_and_close_is_a_probe_not_a_warning(line: Line) -> None:
    """A bare TCP connect-and-close logs no warning; a real call still works after it."""
    before = APP_LOG.read_text(encoding="utf-8").count("\n") if APP_LOG.exists() else 0
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", line.port)
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.2)
    transcript = await line.call(lambda caller: caller.play(Prompt.WELCOME))
    assert transcript.heard == ["welcome"]
    lines = APP_LOG.read_text(encoding="utf-8").splitlines()[before:]
    levels = [json.loads(text).get("level") for text in lines if text.startswith("{")]
    assert "warning" not in levels and "error" not in levels
    assert line.server.calls_served == 1
