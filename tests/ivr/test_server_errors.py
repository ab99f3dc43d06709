"""What the server keeps and writes when a call fails: no secret entry, no frames, no SQL
parameters, and a record of bounded size however many calls fail."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import tracemalloc
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend import metrics
from backend.db.engine import get_engine
from backend.logsetup import configure_logging
from ivr import callstats
from ivr.agi.bridge import await_
from ivr.caller import Caller
from ivr.fake_asterisk import agi_environment
from ivr.server import AgiServer
from prompts.catalogue import Prompt
from tests.conftest import USED_SECRETS, make_id_number
from tests.ivr.conftest import Line

Answer = Callable[[str], list[str]]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The application's JSON log, to a file of this test's own."""
    saved = structlog.get_config()
    path = tmp_path / "app.log"
    configure_logging("debug", path, stream=None)
    yield path
    structlog.configure(**saved)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def asterisk_answering(get_data_reply: str) -> Answer:
    """Asterisk's replies: `get_data_reply` to GET DATA, ordinary ones to the rest."""

    def answer(command: str) -> list[str]:
        if command.startswith("GET DATA"):
            return [get_data_reply]
        if command.startswith("CHANNEL STATUS"):
            return ["200 result=6"]
        if command.startswith("STREAM FILE"):
            return ["200 result=0 endpos=16000"]
        return ["200 result=1"]

    return answer


async def scripted_call(
    port: int, script: str, answer: Answer, unique_id: str = "1712000000.77"
) -> list[str]:
    """Play Asterisk's side of one call, replying to each command with `answer(command)`;
    returns the commands received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = agi_environment(script, "127.0.0.1", port, "13800138000", unique_id)
    writer.write("".join(f"{k}: {v}\n" for k, v in env).encode() + b"\n")
    commands: list[str] = []
    async with asyncio.timeout(10):
        while line := (await reader.readline()).decode():
            commands.append(line.rstrip("\n"))
            writer.write("".join(f"{r}\n" for r in answer(commands[-1])).encode())
            await writer.drain()
    writer.close()
    return commands


def ask_pin(caller: Caller) -> str:
    return caller.ask(Prompt.ENTER_PIN, min_len=6, max_len=6, secret=True)


def reachable(roots: object, limit: int = 100_000) -> list[object]:
    """Every object reachable from `roots` by references, stopping at modules, classes and
    functions (shared by the whole program, not held by a record)."""
    seen: dict[int, object] = {}
    stack = [roots]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(
            obj, types.ModuleType | type | types.FunctionType | types.BuiltinFunctionType
        ):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return list(seen.values())


async def test_malformed_reply_at_the_pin_prompt_hides_the_pin(
    line: Line, log_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Asterisk garbles its reply to the PIN prompt: the call fails, and the PIN is in no
    log line, no output and no stored error."""
    pin = "583920"
    USED_SECRETS.add(pin)
    commands = await scripted_call(
        line.port, line.script(ask_pin), asterisk_answering(f"200 result={pin} (timeo")
    )
    assert commands[0].startswith("GET DATA ivr12333/enter-pin")
    assert commands[-1] == 'SET VARIABLE "IVR_NEXT" "unavailable"'  # the call failed as it should
    (error,) = line.server.errors
    assert error.kind == "ivr.agi.errors.AgiProtocolError"
    assert "malformed reply to GET DATA (secret entry, code 200" in error.message
    assert error.call_id == "1712000000.77"
    out, err = capfd.readouterr()
    logged = read(log_file)
    assert "call.failed" in logged
    for where in (logged, out, err, repr(error)):
        assert pin not in where
    assert not any(pin in str(obj) for obj in reachable(line.server.errors) if type(obj) is str)
    line.server.errors.clear()  # expected here; the fixture fails on any other


async def test_failed_call_record_keeps_no_frame(line: Line, log_file: Path) -> None:
    """A flow fails holding a PIN and an ID number in its locals: the error record keeps
    neither, and no frame or traceback (which would keep every local of the call)."""
    id_number = make_id_number()
    pin = "274915"
    USED_SECRETS.add(pin)

    def failing(caller: Caller) -> None:
        entered = ask_pin(caller)
        holder = id_number
        raise RuntimeError(f"bug after {entered} for {holder}")

    script = line.script(failing)
    await scripted_call(line.port, script, asterisk_answering(f"200 result={pin}"))
    assert [e.kind for e in line.server.errors] == ["RuntimeError"]
    objects = reachable(line.server.errors)
    assert not [o for o in objects if isinstance(o, types.FrameType | types.TracebackType)]
    assert not [o for o in objects if isinstance(o, BaseException)]
    strings = [o for o in objects if type(o) is str]
    assert not [s for s in strings if pin in s or id_number in s]
    logged = read(log_file)
    assert "RuntimeError" in logged and "failing" in logged  # the traceback is still logged
    assert pin not in logged and id_number not in logged
    # The flow's own exception (kept by the test's recorder) has its frames cleared.
    recorded = line.results[-1]
    assert isinstance(recorded, RuntimeError)
    tb = recorded.__traceback__
    while tb is not None:
        assert pin not in repr(tb.tb_frame.f_locals)
        tb = tb.tb_next
    line.results.clear()
    line.server.errors.clear()


async def test_a_thousand_failing_calls_keep_a_bounded_record(log_file: Path) -> None:
    """1800 calls fail, 20 at a time: the server's error record stays small, and the
    memory the process keeps does not grow with the number of failures (less than 64 KiB
    over the last 800, where keeping each exception was 5.4 KiB a call)."""
    pin = "731846"
    USED_SECRETS.add(pin)

    def failing(caller: Caller) -> None:
        entered = ask_pin(caller)
        raise ValueError(entered)

    server = AgiServer({"failing": failing}, drain_seconds=2.0)
    port = await server.start("127.0.0.1", 0)
    answer = asterisk_answering(f"200 result={pin}")

    async def fail(count: int) -> None:
        for _ in range(count // 20):
            await asyncio.gather(*(scripted_call(port, "failing", answer) for _ in range(20)))

    await fail(200)  # warm-up: caches, the log file's buffers, the record filling
    # Each ended call also leaves a row for `call_outcomes`, waiting here (no database) in
    # a queue bounded on its own (the next test): not what this test measures.
    callstats._queue.clear()
    gc.collect()
    tracemalloc.start()
    try:
        # Two windows of 800: what is kept whatever the number of calls (a buffer the
        # greenlets, the allocator or the log reallocate, first traced in the first
        # window) shows in the first; what each failed call would keep, in both.
        await fail(800)
        callstats._queue.clear()
        gc.collect()
        middle = tracemalloc.get_traced_memory()[0]
        await fail(800)
        callstats._queue.clear()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - middle
    finally:
        tracemalloc.stop()
    await server.drain()
    assert server.errors_seen == 1800
    assert len(server.errors) == server.errors.maxlen
    assert server.errors.maxlen is not None and server.errors.maxlen <= 200
    record_bytes = sum(
        obj.__sizeof__() for obj in reachable(server.errors) if not isinstance(obj, int)
    )
    print(f"record: {len(server.errors)} entries, {record_bytes} B; retained growth {grown} B")
    assert record_bytes < 100 * 1024
    assert grown < 64 * 1024  # the old list of exceptions kept about 5.4 KiB per call
    server.errors.clear()


async def test_call_records_waiting_for_the_database_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows of ended calls wait for the writer in a bounded queue: past its limit (the
    database away for long under load) further rows are dropped and counted, not kept."""
    monkeypatch.setattr(callstats, "QUEUE_LIMIT", 50)
    callstats._queue.clear()
    dropped = metrics.CALL_RECORDS_DROPPED._value.get()
    for n in range(120):  # no await in between: the writer cannot take any meanwhile
        callstats._write_later(f"call-{n}", "echo", "ended", "", 1.0)
    assert len(callstats._queue) == 50
    assert metrics.CALL_RECORDS_DROPPED._value.get() - dropped == 70
    writer = callstats._writer
    callstats._queue.clear()
    if writer is not None and not writer.done():
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def test_database_error_is_logged_without_its_parameters(
    db: str, line: Line, log_file: Path
) -> None:
    """A query fails inside a call: neither the bound value nor PostgreSQL's echo of it
    reaches the log, while the failure's kind and place do."""
    secret = "649173"
    USED_SECRETS.add(secret)

    async def query() -> object:
        async with get_engine().connect() as conn:
            # Division by zero: PostgreSQL's message does not quote the value, so only
            # the driver's parameter list could carry it.
            return await conn.scalar(
                text("SELECT 1 / (CASE WHEN CAST(:v AS text) = '' THEN 1 ELSE 0 END)"),
                {"v": secret},
            )

    def failing(caller: Caller) -> None:
        await_(query())

    await scripted_call(line.port, line.script(failing), asterisk_answering("200 result="))
    (error,) = line.server.errors
    assert error.kind == "sqlalchemy.exc.DBAPIError"
    logged = read(log_file)
    assert "sqlalchemy.exc.DBAPIError" in logged and "22012" in logged  # division_by_zero
    assert secret not in logged
    assert "[parameters:" not in logged  # SQLAlchemy's rendering of bound values
    assert secret not in error.message
    line.server.errors.clear()
    line.results.clear()


async def test_engine_hides_parameters_in_errors(db: str) -> None:
    """The application's engine leaves bound values out of its exceptions' text."""
    secret = "815264"
    USED_SECRETS.add(secret)
    with pytest.raises(DBAPIError) as caught:
        async with get_engine().connect() as conn:
            await conn.scalar(
                text("SELECT 1 / (CASE WHEN CAST(:v AS text) = '' THEN 1 ELSE 0 END)"),
                {"v": secret},
            )
    assert secret not in str(caught.value)
    assert "SQL parameters hidden" in str(caught.value)


def test_log_renders_no_exception_values(tmp_path: Path) -> None:
    """An exception logged with its traceback shows type and place, never its arguments
    (which may hold a PIN or an ID number)."""
    secret = "902517"
    USED_SECRETS.add(secret)
    saved = structlog.get_config()
    path = tmp_path / "app.log"
    configure_logging("info", path, stream=None)
    try:
        try:
            try:
                raise KeyError(secret)
            except KeyError as first:
                raise ValueError(f"wrong PIN {secret}") from first
        except ValueError:
            structlog.get_logger("test").exception("boom")
    finally:
        structlog.configure(**saved)
    logged = path.read_text()
    assert "ValueError" in logged and "KeyError" in logged
    assert "test_log_renders_no_exception_values" in logged
    assert secret not in logged


async def test_log_lines_carry_the_call_id_unmasked(line: Line, log_file: Path) -> None:
    """A call id whose sequence is as long as a card number is logged as Asterisk gave it,
    so the log matches the id on the agent's screen; a card number in the line is masked."""
    call_id = "1796105603.123459495"

    def flow(caller: Caller) -> None:
        structlog.get_logger("test").info("card.keyed", card="123459495")
        caller.hangup()

    await scripted_call(line.port, line.script(flow), asterisk_answering(""), call_id)
    events = [json.loads(raw) for raw in read(log_file).splitlines()]
    keyed = next(e for e in events if e["event"] == "card.keyed")
    assert keyed["call_id"] == call_id
    assert keyed["card"] == "*****9495"
    assert {e["call_id"] for e in events if "call_id" in e} == {call_id}


def test_library_records_render_no_exception_values(tmp_path: Path) -> None:
    """A library's error record (asyncio's, with a task's repr after its first line) goes
    to the same log without the exception's arguments."""
    secret = "517382"
    USED_SECRETS.add(secret)
    saved = structlog.get_config()
    path = tmp_path / "app.log"
    configure_logging("info", path, stream=None)
    try:
        try:
            raise ValueError(secret)
        except ValueError as exc:
            logging.getLogger("asyncio").error(
                "Task exception was never retrieved\nfuture: <Task exception=%r>", exc, exc_info=exc
            )
    finally:
        structlog.configure(**saved)
    (event,) = [json.loads(line) for line in read(path).splitlines()]
    assert event["event"] == "Task exception was never retrieved"
    assert event["logger"] == "asyncio" and event["level"] == "error"
    assert "ValueError (message withheld)" in event["exception"]
    assert secret not in read(path)
