"""Every AGI reply form Asterisk 22 sends, through the one parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.agi import reply as reply_module
from ivr.agi.reply import (
    Reply,
    ReplyKind,
    channel_is_up,
    ends_call,
    minus_one_is_hangup,
    parse_reply,
)

OK = ReplyKind.OK


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=0\n", Reply(OK, 200, "0")),
        ("200 result=1 (some value)\n", Reply(OK, 200, "1", "some value")),
        ("200 result=1 (a (nested) value)\n", Reply(OK, 200, "1", "a (nested) value")),
        ("200 result=0 endpos=12345\n", Reply(OK, 200, "0", endpos=12345)),
        ("200 result=-1 endpos=0\n", Reply(OK, 200, "-1", endpos=0)),
        ("200 result=50 endpos=800\n", Reply(OK, 200, "50", endpos=800)),
        ("200 result=0 (timeout) endpos=4000\n", Reply(OK, 200, "0", "timeout", endpos=4000)),
        ("200 result=123\n", Reply(OK, 200, "123")),
        ("200 result=\n", Reply(OK, 200, "")),
        ("200 result=123 (timeout)\n", Reply(OK, 200, "123", "timeout")),
        ("200 result= (timeout)\n", Reply(OK, 200, "", "timeout")),
        ("200 result=-1\n", Reply(OK, 200, "-1")),
        ("200 result=12*4\r\n", Reply(OK, 200, "12*4")),
        (
            "510 Invalid or unknown command\n",
            Reply(ReplyKind.INVALID, 510, text="Invalid or unknown command"),
        ),
        (
            "511 Command Not Permitted on a dead channel or intercepted channel\n",
            Reply(
                ReplyKind.DEAD,
                511,
                text="Command Not Permitted on a dead channel or intercepted channel",
            ),
        ),
        (
            "520-Invalid command syntax.  Proper usage follows:\n",
            Reply(
                ReplyKind.USAGE,
                520,
                text="Invalid command syntax.  Proper usage follows:",
                continued=True,
            ),
        ),
        ("520 End of proper usage.\n", Reply(ReplyKind.USAGE, 520, text="End of proper usage.")),
        ("HANGUP\n", Reply(ReplyKind.HANGUP)),
        ("", Reply(ReplyKind.CLOSED)),
        ("\n", Reply(ReplyKind.MALFORMED)),
        ("hello\n", Reply(ReplyKind.MALFORMED, text="hello")),
        ("200 nonsense\n", Reply(ReplyKind.MALFORMED, 200, text="200 nonsense")),
        ("404 Not here\n", Reply(ReplyKind.MALFORMED, 404, text="404 Not here")),
    ],
)
def test_parse_reply(line: str, expected: Reply) -> None:
    """Each reply form parses to its kind, result, data and endpos."""
    assert parse_reply(line) == expected


def test_timeout_flag_only_for_timeout_data() -> None:
    """`(timeout)` sets timed_out; a variable's value in parentheses does not."""
    assert parse_reply("200 result= (timeout)\n").timed_out
    assert parse_reply("200 result=12 (timeout)\n").timed_out
    assert not parse_reply("200 result=1 (timeouts)\n").timed_out
    assert not parse_reply("200 result=\n").timed_out


@pytest.mark.parametrize(
    ("line", "over"),
    [("HANGUP\n", True), ("511 dead\n", True), ("", True), ("200 result=-1\n", False)],
)
def test_replies_that_end_the_call(line: str, over: bool) -> None:
    """A HANGUP line, a 511 and a closed socket end the call whatever the command."""
    assert ends_call(parse_reply(line)) is over


@pytest.mark.parametrize(
    ("verb", "hangup"),
    [
        ("GET DATA", False),
        ("STREAM FILE", False),
        ("CHANNEL STATUS", False),
        ("ANSWER", True),
        ("WAIT FOR DIGIT", True),
        ("EXEC", True),
    ],
)
def test_minus_one_meaning(verb: str, hangup: bool) -> None:
    """`result=-1` is a hang-up, except where a missing sound file gives the same reply."""
    assert minus_one_is_hangup(verb) is hangup


@pytest.mark.parametrize(
    ("line", "up"),
    [
        ("200 result=6\n", True),
        ("200 result=4\n", True),
        ("200 result=0\n", False),
        ("200 result=-1\n", False),
        ("511 dead\n", False),
    ],
)
def test_channel_status(line: str, up: bool) -> None:
    """CHANNEL STATUS: ringing or up counts as someone still there."""
    assert channel_is_up(parse_reply(line)) is up


def _parse_by_pattern(line: str) -> Reply:
    """The general (regex) path alone: what `parse_reply` must agree with."""
    match = reply_module._CODE_RE.match(line.rstrip("\r\n"))
    assert match is not None and match.group(1) == "200"
    ok = reply_module._OK_RE.match(match.group(3))
    if ok is None:
        return Reply(ReplyKind.MALFORMED, code=200, text=line.rstrip("\r\n"))
    extras = dict(reply_module._KV_RE.findall(ok.group(3)))
    endpos = extras.get("endpos")
    return Reply(
        OK,
        code=200,
        result=ok.group(1),
        data=ok.group(2),
        endpos=int(endpos) if endpos is not None and endpos.isdigit() else None,
    )


@given(
    st.text(alphabet="0123456789*#-AB ()\t\x0b\u3000\u0661=endposx", max_size=12),
    st.sampled_from(["\n", "\r\n"]),
)
def test_fast_path_agrees_with_the_pattern(rest: str, newline: str) -> None:
    """The regex-free path for common 200 replies gives what the general parser gives."""
    line = f"200 result={rest}{newline}"
    assert parse_reply(line) == _parse_by_pattern(line)


@pytest.mark.parametrize(
    "line", ["200 result=0 endpos=16000\n", "200 result=123456\n", "200 result=-1 endpos=0\n"]
)
def test_fast_path_common_replies(line: str) -> None:
    """The replies of nearly every command agree with the general parser."""
    assert parse_reply(line) == _parse_by_pattern(line)
