"""The server: bounded headers, unknown scripts, capacity, failures, drain, the bridge."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from backend.logsetup import configure_logging
from ivr.agi.bridge import await_
from ivr.caller import Caller
from ivr.fake_asterisk import run_call
from ivr.server import AgiServer
from prompts.catalogue import Prompt
from tests.conftest import USED_SECRETS
from tests.ivr.conftest import Line, calls_held


def _slow(caller: Caller) -> str:
    caller.play(Prompt.WELCOME)
    return caller.menu(Prompt.CARD_MENU, "12")


async def test_stalled_header_does_not_block_other_calls(line: Line) -> None:
    """A client that stops mid-headers is cut off after the header timeout; others go on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", line.port)
    writer.write(b"agi_network: yes\nagi_network_script: ")
    await writer.drain()
    transcript = await line.call(_slow, ["1"])
    assert line.results == ["1"]
    assert transcript.ended == "agi-returned"
    async with asyncio.timeout(2.0):
        assert await reader.read() == b""  # the server hung up on the stalled client
    writer.close()


async def test_header_flood_is_cut_off(line: Line) -> None:
    """An endless header is refused after a bounded number of lines."""
    reader, writer = await asyncio.open_connection("127.0.0.1", line.port)
    writer.write(b"".join(b"agi_x%d: y\n" % n for n in range(1000)))
    async with asyncio.timeout(2.0):
        assert await reader.read() == b""
    writer.close()


async def test_unknown_script(line: Line) -> None:
    """An unknown script gets a VERBOSE and the socket closed; the dialplan falls back."""
    with capture_logs() as logs:
        transcript = await run_call("127.0.0.1", line.port, "no-such-script", ["1"])
    assert transcript.commands == ['VERBOSE "ivr12333: unknown AGI script" 1']
    assert transcript.ended == "agi-returned"
    assert any(entry["event"] == "call.unknown_script" for entry in logs)


async def test_malformed_script_name(line: Line) -> None:
    """A script name with odd characters is treated as unknown."""
    transcript = await run_call("127.0.0.1", line.port, 'x" 1\nHANGUP', [])
    assert transcript.commands == ['VERBOSE "ivr12333: unknown AGI script" 1']


async def test_unexpected_exception(line: Line) -> None:
    """A flow's bug is logged and recorded; the handler says nothing more and hands the call
    to the dialplan's one apology and fallback (IVR_NEXT=unavailable)."""

    def broken(caller: Caller) -> None:
        caller.play(Prompt.WELCOME)
        raise KeyError("bug")

    with capture_logs() as logs:
        transcript = await line.call(broken, [])
    assert transcript.heard == ["welcome"]
    assert transcript.ended == "agi-returned"
    assert transcript.variables["IVR_NEXT"] == "unavailable"
    assert [e.kind for e in line.server.errors] == ["KeyError"]
    (failed,) = [entry for entry in logs if entry["event"] == "call.failed"]
    assert failed["exc_info"] is True
    line.server.errors.clear()  # expected here; the fixture fails on any other


async def test_capacity_refusal() -> None:
    """Beyond max_calls a new call is refused at once with FAILURE (Asterisk then tries the
    next server) while the others go on."""
    server = AgiServer({"slow": _slow}, max_calls=1)
    port = await server.start("127.0.0.1", 0)
    held = asyncio.create_task(run_call("127.0.0.1", port, "slow", ["1"], think_seconds=0.5))
    await calls_held(server, 1)
    refused = await run_call("127.0.0.1", port, "slow", ["1"])
    assert refused.commands == ["FAILURE"]
    assert (await held).heard == ["welcome", "card-menu"]
    await server.drain()
    assert not server.errors


async def test_many_calls_at_once(line: Line) -> None:
    """Hundreds of calls held together on one loop each get their own answers."""

    def flow(caller: Caller) -> str:
        return caller.ask(Prompt.ENTER_CARD_NUMBER, min_len=1, max_len=9)

    transcripts = await asyncio.gather(
        *(line.call(flow, [f"{n}#"], think_seconds=0.2) for n in range(300))
    )
    assert sorted(line.results) == sorted(str(n) for n in range(300))
    assert {t.ended for t in transcripts} == {"agi-returned"}


async def test_await_bridge(line: Line) -> None:
    """await_ carries results, exceptions and the call's log context across the bridge."""

    async def backend(value: int) -> tuple[int, object]:
        await asyncio.sleep(0.01)
        return value * 2, structlog.contextvars.get_contextvars().get("call_id")

    async def failing() -> None:
        raise LookupError("no such card")

    def flow(caller: Caller) -> object:
        doubled, call_id = await_(backend(21))
        assert call_id == caller.info.call_id
        assert structlog.contextvars.get_contextvars()["call_id"] == call_id
        with pytest.raises(LookupError):
            await_(failing())
        return doubled

    await line.call(flow, [])
    assert line.results == [42]


async def test_drain_lets_calls_finish_then_says_goodbye() -> None:
    """Drain refuses new calls, lets a quick call finish and says goodbye to a slow one."""
    server = AgiServer({"slow": _slow}, drain_seconds=0.5)
    port = await server.start("127.0.0.1", 0)
    quick = asyncio.create_task(run_call("127.0.0.1", port, "slow", ["1"], think_seconds=0.2))
    stuck = asyncio.create_task(run_call("127.0.0.1", port, "slow", ["1"], think_seconds=30))
    await calls_held(server, 2)
    drain = asyncio.create_task(server.drain())
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    finished, ended = await quick, await stuck
    await drain
    assert finished.heard == ["welcome", "card-menu"]
    assert finished.ended == "agi-returned"
    assert ended.heard == ["welcome", "card-menu", "goodbye"]
    assert ended.ended == "server-hangup"
    assert ("interrupted", "card-menu") in ended.events
    assert not server.errors


async def test_secret_entry_written_nowhere(
    line: Line, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A secret entry's keys reach neither stdout, stderr nor the log file."""
    secret = "864213"
    USED_SECRETS.add(secret)
    log_file = tmp_path / "app.log"
    saved = structlog.get_config()
    configure_logging("debug", log_file, "stderr")
    try:

        def flow(caller: Caller) -> str:
            pin = caller.ask(Prompt.ENTER_PIN, min_len=6, max_len=6, secret=True)
            return str(len(pin))

        transcript = await line.call(flow, [f"{secret}#"])
    finally:
        structlog.configure(**saved)
    assert line.results == ["6"]
    assert transcript.keys == [("enter-pin", f"{secret}#")]
    out, err = capfd.readouterr()
    text = log_file.read_text()
    assert '"length": 6' in text  # the entry was logged, by length
    for where in (out, err, text):
        assert secret not in where
