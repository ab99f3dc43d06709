"""The one parser of Asterisk's AGI replies, and what each reply means for a call.

Reply forms (Asterisk 22, res_agi.c):

- `200 result=0`, `200 result=1 (value)`        ordinary success, GET VARIABLE's value
- `200 result=0 endpos=12345`                   STREAM FILE played (interrupted or not)
- `200 result=-1 endpos=0`                      STREAM FILE: missing file, *or* a hang-up
- `200 result=123`                              GET DATA: digits then `#` (or max digits)
- `200 result=`                                 GET DATA: `#` alone
- `200 result=123 (timeout)`                    GET DATA: digits, then silence
- `200 result= (timeout)`                       GET DATA: silence
- `200 result=-1`                               GET DATA: hang-up, *or* missing prompt
- `510 Invalid or unknown command`
- `511 Command Not Permitted on a dead channel or intercepted channel`
- `520-Invalid command syntax.  Proper usage follows:` ... `520 End of proper usage.`
- `HANGUP`                                      FastAGI: the channel hung up (unsolicited)
- end of stream                                 Asterisk closed the socket
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class ReplyKind(enum.Enum):
    OK = "ok"  # a 200 reply
    HANGUP = "hangup"  # bare HANGUP line
    DEAD = "dead"  # 511
    INVALID = "invalid"  # 510
    USAGE = "usage"  # 520 (first line; more lines follow when it ends in '-')
    CLOSED = "closed"  # end of stream
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ReplyKind
    code: int = 0
    result: str = ""
    data: str | None = None  # the text in parentheses, e.g. "timeout" or a variable's value
    endpos: int | None = None
    text: str = ""  # the message of a non-200 reply
    continued: bool = False  # a 520 reply whose usage lines follow

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def is_minus_one(self) -> bool:
        return self.kind is ReplyKind.OK and self.result == "-1"


_CODE_RE = re.compile(r"^(\d{3})([ -])(.*)$")
_OK_RE = re.compile(r"^result=(\S*)(?:\s+\((.*)\))?((?:\s+\w+=\S*)*)\s*$")
_KV_RE = re.compile(r"(\w+)=(\S*)")

CLOSED = Reply(ReplyKind.CLOSED)
HANGUP = Reply(ReplyKind.HANGUP)


# Replies seen before, by their line: most of a call's replies are the same few lines
# (`200 result=0 endpos=N` for each prompt), and a Reply is immutable. Only results of at
# most two characters are kept (no entry of a number or a PIN is that short), and only so
# many lines: past the limit, lines are parsed every time.
_SEEN: dict[str, Reply] = {}
_SEEN_LIMIT = 4096
_SEEN_RESULT_CHARS = 2


def parse_reply(line: str) -> Reply:
    """Parse one line as read from the socket (`""` means the stream ended)."""
    seen = _SEEN.get(line)
    if seen is not None:
        return seen
    if line == "":
        return CLOSED
    text = line.rstrip("\r\n")
    if text.startswith("200 result="):
        # Most replies, parsed without a regex: `200 result=X` and `200 result=X endpos=N`.
        rest = text[11:]
        value, space, extra = rest.partition(" ")
        # isprintable: no whitespace but the one space (the general path handles the rest).
        if value.isprintable() and (
            not space or (extra.startswith("endpos=") and extra[7:].isdigit() and extra.isascii())
        ):
            endpos = int(extra[7:]) if space else None
            reply = Reply(ReplyKind.OK, code=200, result=value, endpos=endpos)
            if len(value) <= _SEEN_RESULT_CHARS and len(_SEEN) < _SEEN_LIMIT:
                _SEEN[line] = reply
            return reply
    if text == "HANGUP":
        return HANGUP
    match = _CODE_RE.match(text)
    if match is None:
        return Reply(ReplyKind.MALFORMED, text=text)
    code, sep, rest = int(match.group(1)), match.group(2), match.group(3)
    if code == 200:
        ok = _OK_RE.match(rest)
        if ok is None:
            return Reply(ReplyKind.MALFORMED, code=code, text=text)
        extras = dict(_KV_RE.findall(ok.group(3)))
        endpos = extras.get("endpos")
        return Reply(
            ReplyKind.OK,
            code=200,
            result=ok.group(1),
            data=ok.group(2),
            endpos=int(endpos) if endpos is not None and endpos.isdigit() else None,
        )
    kind = {510: ReplyKind.INVALID, 511: ReplyKind.DEAD, 520: ReplyKind.USAGE}.get(code)
    if kind is None:
        return Reply(ReplyKind.MALFORMED, code=code, text=text)
    return Reply(kind, code=code, text=rest, continued=sep == "-")


def ends_call(reply: Reply) -> bool:
    """Whether this reply by itself means the call is over, whatever the command."""
    return reply.kind in (ReplyKind.HANGUP, ReplyKind.DEAD, ReplyKind.CLOSED)


# Commands whose `result=-1` is ambiguous: a missing sound file gives the same reply as a
# hang-up, so the channel must be asked whether it is still up.
AMBIGUOUS_MINUS_ONE = frozenset({"STREAM FILE", "GET DATA"})


def minus_one_is_hangup(verb: str) -> bool:
    """Whether `200 result=-1` to `verb` means the caller hung up without further checks."""
    return verb not in AMBIGUOUS_MINUS_ONE and verb != "CHANNEL STATUS"


# CHANNEL STATUS values of a channel someone can still hear: ringing (4, 5) or up (6).
_ALIVE_STATES = frozenset({"4", "5", "6"})


def channel_is_up(reply: Reply) -> bool:
    """Read a CHANNEL STATUS reply."""
    return reply.kind is ReplyKind.OK and reply.result in _ALIVE_STATES
