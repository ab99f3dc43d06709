"""pyst2's traps, each neutralised by the adapter (`QuietAGI`/`AgiChannel`)."""

from __future__ import annotations

import contextlib
import io
import signal
import threading

import pytest
from asterisk.agi import AGI

from ivr.agi.bridge import await_
from ivr.agi.channel import AgiChannel, Entry, QuietAGI
from ivr.agi.errors import AgiProtocolError, CallerHungUp
from ivr.agi.streams import NullSink
from tests.ivr.conftest import CLOSE, over_socket


def _in_thread(fn: object) -> BaseException | None:
    caught: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return caught[0] if caught else None


def test_pyst2_constructor_fails_outside_main_thread() -> None:
    """The trap itself: pyst2's AGI() installs a signal handler, which raises in a thread."""
    error = _in_thread(lambda: AGI(io.StringIO("\n"), io.StringIO(), io.StringIO()))
    assert isinstance(error, ValueError)


def test_quiet_agi_installs_no_signal_handler() -> None:
    """QuietAGI constructs in any thread and leaves SIGHUP's handler alone."""
    before = signal.getsignal(signal.SIGHUP)
    assert _in_thread(lambda: QuietAGI({"agi_network": "yes"}, None, None)) is None  # type: ignore[arg-type]
    QuietAGI({}, None, None)  # type: ignore[arg-type]
    assert signal.getsignal(signal.SIGHUP) is before


def test_quiet_agi_has_a_null_stderr() -> None:
    """pyst2's command/result trace goes to a sink, never to the process's stderr."""
    agi = QuietAGI({}, None, None)  # type: ignore[arg-type]
    assert isinstance(agi.stderr, NullSink)


async def test_commands_and_results_not_written_anywhere(capfd: pytest.CaptureFixture[str]) -> None:
    """A GET DATA answered with keys leaves no trace on stdout or stderr."""
    result, _ = await over_socket(
        ["200 result=918273 (timeout)\n"], lambda ch: ch.get_data("p", 1000, 7)
    )
    assert result == Entry("918273", timed_out=True)
    out, err = capfd.readouterr()
    assert "918273" not in out + err


@pytest.mark.parametrize(
    "replies",
    [
        ["HANGUP\n"],
        ["511 Command Not Permitted on a dead channel or intercepted channel\n"],
        ["200 result=-1\n"],
        [CLOSE],
    ],
    ids=["hangup-line", "511", "minus-one", "closed"],
)
async def test_hangup_forms_become_caller_hung_up(replies: list[object]) -> None:
    """A bare HANGUP line, a 511, `result=-1` and a closed socket: one CallerHungUp."""
    result, _ = await over_socket(replies, lambda ch: ch.set_variable("A", "1"))
    assert isinstance(result, CallerHungUp)


async def test_hangup_line_before_a_reply() -> None:
    """An unsolicited HANGUP (the caller left between commands) ends the next command."""
    result, _ = await over_socket(["HANGUP\n200 result=1\n"], lambda ch: ch.verbose("x"))
    assert isinstance(result, CallerHungUp)


async def test_no_command_sent_after_hangup() -> None:
    """Once hung up, further commands raise at once without touching the socket."""

    def body(ch: AgiChannel) -> object:
        with contextlib.suppress(CallerHungUp):
            ch.verbose("first")
        ch.verbose("second")
        return "sent"

    result, commands = await over_socket(["HANGUP\n", "200 result=1\n"], body)
    assert isinstance(result, CallerHungUp)
    assert commands == ['VERBOSE "first" 1']


async def test_stream_file_missing_while_channel_up() -> None:
    """STREAM FILE `result=-1 endpos=0` with the channel up: missing file, call goes on."""
    result, commands = await over_socket(
        ["200 result=-1 endpos=0\n", "200 result=6\n"], lambda ch: ch.stream_file("ivr/none")
    )
    assert result is False
    assert commands == ['STREAM FILE ivr/none ""', "CHANNEL STATUS"]


async def test_stream_file_minus_one_part_played() -> None:
    """STREAM FILE `result=-1` with endpos > 0: the file exists, so the caller left."""
    result, commands = await over_socket(
        ["200 result=-1 endpos=4000\nHANGUP\n", "511 dead\n"], lambda ch: ch.stream_file("a")
    )
    assert isinstance(result, CallerHungUp)
    assert commands == ['STREAM FILE a ""']


async def test_stream_file_minus_one_then_hangup_line() -> None:
    """STREAM FILE `result=-1 endpos=0` then Asterisk's HANGUP line: the caller left."""
    result, commands = await over_socket(
        ["200 result=-1 endpos=0\nHANGUP\n", "511 dead\n"], lambda ch: ch.stream_file("a")
    )
    assert isinstance(result, CallerHungUp)
    assert commands == ['STREAM FILE a ""', "CHANNEL STATUS"]


async def test_stream_file_minus_one_channel_down() -> None:
    """STREAM FILE `result=-1` and CHANNEL STATUS says down: the caller left."""
    result, _ = await over_socket(
        ["200 result=-1 endpos=0\n", "200 result=0\n"], lambda ch: ch.stream_file("a")
    )
    assert isinstance(result, CallerHungUp)


async def test_get_data_missing_prompt_while_channel_up() -> None:
    """GET DATA `result=-1` with the channel up: the prompt is missing (None), no hang-up."""
    result, _ = await over_socket(
        ["200 result=-1\n", "200 result=6\n"], lambda ch: ch.get_data("a", 1000, 2)
    )
    assert result is None


async def test_get_data_minus_one_then_hangup() -> None:
    """GET DATA `result=-1` then HANGUP: CallerHungUp, not a missing prompt."""
    result, _ = await over_socket(
        ["200 result=-1\nHANGUP\n", "511 dead\n"], lambda ch: ch.get_data("a", 1000, 2)
    )
    assert isinstance(result, CallerHungUp)


@pytest.mark.parametrize(
    ("reply", "entry"),
    [
        ("200 result=123\n", Entry("123", timed_out=False)),
        ("200 result=\n", Entry("", timed_out=False)),
        ("200 result=123 (timeout)\n", Entry("123", timed_out=True)),
        ("200 result= (timeout)\n", Entry("", timed_out=True)),
    ],
    ids=["keys-hash", "hash-alone", "keys-timeout", "silence"],
)
async def test_get_data_tells_timeout_from_hash(reply: str, entry: Entry) -> None:
    """The raw GET DATA reply says whether the caller pressed # or went silent."""
    result, _ = await over_socket([reply], lambda ch: ch.get_data("a", 1000, 4))
    assert result == entry


async def test_get_data_always_sends_its_timeout() -> None:
    """GET DATA goes out with an explicit timeout and max digits, never pyst2's 2 s."""
    _, commands = await over_socket(
        ["200 result=1\n"], lambda ch: ch.get_data("ivr12333/x", 6000, 19)
    )
    assert commands == ["GET DATA ivr12333/x 6000 19"]


async def test_invalid_command_is_a_protocol_error() -> None:
    """510 raises AgiProtocolError (a bug on our side, not a hang-up)."""
    result, _ = await over_socket(
        ["510 Invalid or unknown command\n"], lambda ch: ch.command("FLY AWAY")
    )
    assert isinstance(result, AgiProtocolError)


async def test_usage_reply_is_read_whole() -> None:
    """A multi-line 520 is consumed entirely, so the next reply matches the next command."""

    def body(ch: AgiChannel) -> object:
        with contextlib.suppress(AgiProtocolError):
            ch.command("GET DATA")
        return ch.command("CHANNEL STATUS").result

    usage = (
        "520-Invalid command syntax.  Proper usage follows:\n"
        "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
        "520 End of proper usage.\n"
    )
    result, _ = await over_socket([usage, "200 result=6\n"], body)
    assert result == "6"


async def test_silent_asterisk_times_out_as_hangup() -> None:
    """No reply within the reply timeout: CallerHungUp, the call's greenlet is freed."""

    def body(ch: AgiChannel) -> object:
        ch.limit_reply_wait(0.2)
        ch.verbose("anyone?")
        return "replied"

    result, _ = await over_socket(["", "", ""], body)  # replies are empty: nothing sent
    assert isinstance(result, CallerHungUp)


def test_await_outside_a_flow_is_refused() -> None:
    """await_ only works inside a call's greenlet."""

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError):
        await_(nothing())


@pytest.mark.parametrize(
    ("reply", "key"),
    [
        ("200 result=50 endpos=6400\n", "2"),  # "2" pressed part-way through
        ("200 result=42 endpos=100\n", "*"),
        ("200 result=0 endpos=16000\n", ""),  # played through
    ],
)
async def test_stream_file_until_key(reply: str, key: str) -> None:
    """STREAM FILE with escape digits: the key that cut the prompt short, or "" when it
    played through; the keys offered are sent quoted."""
    result, commands = await over_socket([reply], lambda ch: ch.stream_file_until_key("w", "20*"))
    assert result == key
    assert commands == ['STREAM FILE w "20*"']


async def test_stream_file_until_key_missing_file() -> None:
    """A missing interruptible prompt returns None, and the call goes on."""
    result, _ = await over_socket(
        ["200 result=-1 endpos=0\n", "200 result=6\n"],
        lambda ch: ch.stream_file_until_key("none", "2"),
    )
    assert result is None
