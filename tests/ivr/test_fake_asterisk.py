"""The fake Asterisk answers the wire protocol as Asterisk 22 does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from ivr.fake_asterisk import (
    DEAD_REPLY,
    INVALID_REPLY,
    FakeCall,
    Transcript,
    agi_environment,
    check_groups,
    prompt_id,
)

_FINAL = ("200 ", "510 ", "511 ", "520 ")


async def drive(
    commands: Sequence[str], keys: Sequence[str] = (), **options: Any
) -> tuple[list[str], dict[str, str], Transcript]:
    """Act as the FastAGI server: send `commands` one by one to a fake call.

    Returns every line the fake sent after its environment, the environment, and the
    transcript.
    """
    received: list[str] = []
    env: dict[str, str] = {}
    done = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := (await reader.readline()).decode().rstrip("\n"):
            key, _, value = line.partition(": ")
            env[key] = value
        for command in commands:
            writer.write(f"{command}\n".encode())
            while True:
                line = (await reader.readline()).decode().rstrip("\n")
                received.append(line)
                if not line or line.startswith(_FINAL):
                    break
        writer.close()
        received.extend((await reader.read()).decode().splitlines())
        done.set()

    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    transcript = await FakeCall(reader, writer, keys, **options).run(
        "main", "127.0.0.1", port, "13800138000", 5.0
    )
    await done.wait()
    listener.close()
    return received, env, transcript


async def test_environment() -> None:
    """The environment is Asterisk's, ending with a blank line."""
    _, env, _ = await drive([])
    assert env["agi_network"] == "yes"
    assert env["agi_network_script"] == "main"
    assert env["agi_request"].startswith("agi://127.0.0.1:")
    assert env["agi_request"].endswith("/main")
    assert env["agi_language"] == "zh"
    assert env["agi_callerid"] == "13800138000"
    assert env["agi_uniqueid"]
    assert env["agi_channel"].startswith("PJSIP/")
    assert [k for k, _ in agi_environment("m", "h", 1, "1", "2.3")][:2] == [
        "agi_network",
        "agi_network_script",
    ]


@pytest.mark.parametrize(
    ("group", "max_digits", "reply"),
    [
        ("123#", 5, "200 result=123"),
        ("123", 5, "200 result=123 (timeout)"),
        ("#", 5, "200 result="),
        ("-", 5, "200 result= (timeout)"),
        ("12345#", 3, "200 result=123"),
        ("12", 2, "200 result=12"),
        ("1*2#", 5, "200 result=1*2"),
    ],
)
async def test_get_data_replies(group: str, max_digits: int, reply: str) -> None:
    """Each key group gives GET DATA's real reply form."""
    received, _, transcript = await drive([f"GET DATA ivr12333/p 3000 {max_digits}"], [group])
    assert received == [reply]
    assert transcript.keys == [("p", group)]


async def test_stream_file_and_missing_sound() -> None:
    """STREAM FILE plays, or gives Asterisk's missing-file reply; both are recorded."""
    received, _, transcript = await drive(
        ['STREAM FILE ivr12333/welcome ""', 'STREAM FILE ivr12333/gone ""', "CHANNEL STATUS"],
        available_sounds={"welcome"},
    )
    assert received == ["200 result=0 endpos=16000", "200 result=-1 endpos=0", "200 result=6"]
    assert transcript.heard == ["welcome"]
    assert transcript.missing == ["gone"]


async def test_get_data_missing_prompt() -> None:
    """GET DATA of a missing file fails at once with -1, consuming no keys."""
    received, _, transcript = await drive(
        ["GET DATA ivr12333/gone 3000 1"], ["1"], available_sounds=set()
    )
    assert received == ["200 result=-1"]
    assert transcript.keys == []


async def test_variables_exec_verbose() -> None:
    """SET VARIABLE, EXEC Wait and VERBOSE answer like Asterisk; EXEC of another
    application gets -2 (the flows run none)."""
    received, _, transcript = await drive(
        [
            'SET VARIABLE "IVR_NEXT" "agent"',
            'EXEC Wait "0.5"',
            'EXEC Playback "ivr12333/welcome"',
            'VERBOSE "hi" 1',
        ]
    )
    assert received == ["200 result=1", "200 result=0", "200 result=-2", "200 result=1"]
    assert transcript.variables == {"IVR_NEXT": "agent"}
    assert ("pause", "0.5") in transcript.events
    assert transcript.heard == []


async def test_unknown_command_and_usage() -> None:
    """Unknown commands, and those no flow sends, get 510; a command missing its arguments
    gets the 520 usage text."""
    received, _, _ = await drive(["FLY AWAY", "NOOP", "GET DATA"])
    assert received[:2] == [INVALID_REPLY, INVALID_REPLY]
    assert received[2] == "520-Invalid command syntax.  Proper usage follows:"
    assert received[-1] == "520 End of proper usage."


async def test_server_hangup() -> None:
    """HANGUP replies, then the HANGUP line, then 511 to everything."""
    received, _, transcript = await drive(["HANGUP", "VERBOSE x 1"])
    assert received == ["200 result=1", "HANGUP", DEAD_REPLY]
    assert transcript.ended == "server-hangup"


async def test_caller_hangup_forms() -> None:
    """A hang-up during a prompt: -1 then HANGUP; during another command: HANGUP then 511."""
    received, _, transcript = await drive(
        ['STREAM FILE ivr12333/a ""', "VERBOSE x 1"], hangup_at="a"
    )
    assert received == ["200 result=-1 endpos=8000", "HANGUP", DEAD_REPLY]
    assert transcript.ended == "caller-hangup"
    received, _, _ = await drive(["VERBOSE x 1", "VERBOSE y 1"], hangup_at=2)
    assert received == ["200 result=1", "HANGUP", DEAD_REPLY]


async def test_keys_run_out() -> None:
    """With no key group left, the caller hangs up at the next input prompt."""
    received, _, transcript = await drive(["GET DATA ivr12333/p 3000 1"])
    assert received == ["200 result=-1", "HANGUP"]
    assert transcript.ended == "caller-hangup"


async def test_agi_returned() -> None:
    """The server closing the socket with the channel up ends the call as agi-returned."""
    _, _, transcript = await drive(["VERBOSE x 1"])
    assert transcript.ended == "agi-returned"


def test_check_groups() -> None:
    """Key groups: keys then an optional #, or - or !; anything else is refused."""
    assert check_groups(["1", "12#", "#", "-", "!", "*0#"]) == ["1", "12#", "#", "-", "!", "*0#"]
    for bad in ("", "1#2", "a", "##", "-1"):
        with pytest.raises(ValueError, match="key group"):
            check_groups([bad])


def test_prompt_id() -> None:
    """Sounds under ivr12333/ are shown by id; others stay whole."""
    assert prompt_id("ivr12333/welcome") == "welcome"
    assert prompt_id("beep") == "beep"
