"""pyst2's AGI with its traps removed, and the few channel operations the IVR uses.

pyst2 0.5.1 formats and sends commands well, but in a server it must not: install a SIGHUP
handler (raises outside the main thread, and means nothing for FastAGI), write every command
and result to a stderr (keys and PINs included), or read replies with its own parser (it
misses the bare `HANGUP` line, cannot tell a timeout from `#`, and reports a missing sound
file like a hang-up). `QuietAGI` keeps its command side and routes every reply through
`ivr.agi.reply`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asterisk.agi import AGI

from ivr.agi.errors import AgiProtocolError, CallerHungUp
from ivr.agi.reply import (
    Reply,
    ReplyKind,
    channel_is_up,
    ends_call,
    minus_one_is_hangup,
    parse_reply,
)
from ivr.agi.streams import LineReader, LineWriter, NullSink

# A 520 usage text is a handful of lines; more means the stream is not Asterisk.
_MAX_USAGE_LINES = 64


class QuietAGI(AGI):  # type: ignore[misc]  # pyst2 has no type information
    """pyst2's AGI over the call's socket: no signal handler, no stderr, one reply parser."""

    def __init__(self, env: Mapping[str, str], stdin: LineReader, stdout: LineWriter) -> None:
        # AGI.__init__ is skipped on purpose: it calls signal.signal and reads the
        # environment, which the server has already read under a time limit.
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = NullSink()
        self._got_sighup = False
        self.env = env
        self.verb = ""
        self.last_reply: Reply | None = None
        self.hung_up = False
        # Whether the command in progress collects a secret entry (a PIN).
        self.secret_entry = False
        self._secret_next = False

    def test_hangup(self) -> None:
        # pyst2 calls this before each command: once the call is over, send nothing more.
        if self.hung_up:
            raise CallerHungUp(f"channel already hung up (before {self.verb or 'any command'})")

    def next_entry_is_secret(self) -> None:
        """The next command collects a secret entry."""
        self._secret_next = True

    def send_command(self, command: str, *args: Any) -> None:
        command = command.strip()
        self.verb = command.upper()
        self.secret_entry, self._secret_next = self._secret_next, False
        # pyst2's own formatting, without its copy of every command to stderr.
        line = f"{command} {' '.join(map(str, args))}".rstrip() if args else command
        self.stdout.send_line(line)

    def execute(self, command: str, *args: Any) -> dict[str, tuple[str, str]]:
        # pyst2's execute, less its SIGHUP and broken-pipe handling: neither can happen here
        # (no signal handler; a closed socket raises CallerHungUp).
        reply = self.run(command, *args)
        return {"result": (reply.result, reply.data or "")}

    def run(self, command: str, *args: Any) -> Reply:
        """Send one command and return its checked reply: the path every channel
        operation takes, without the dict pyst2's own methods index into."""
        if self.hung_up:
            raise CallerHungUp(f"channel already hung up (before {self.verb or 'any command'})")
        self.send_command(command, *args)
        return self._checked(self._read_reply())

    def get_result(self, stdin: Any = None) -> dict[str, tuple[str, str]]:
        reply = self._checked(self._read_reply())
        # The shape pyst2's own methods index into.
        return {"result": (reply.result, reply.data or "")}

    def _checked(self, reply: Reply) -> Reply:
        self.last_reply = reply
        if reply.kind is not ReplyKind.OK or reply.result == "-1":
            if ends_call(reply) or (reply.is_minus_one and minus_one_is_hangup(self.verb)):
                self.hung_up = True
                raise CallerHungUp(f"{reply.kind.value} reply to {self.verb}")
            if reply.kind is not ReplyKind.OK:
                raise AgiProtocolError(self._describe(reply))
        return reply

    def _describe(self, reply: Reply) -> str:
        """A rejected or unreadable reply in words, without its text: a garbled reply to
        an entry holds the caller's keys (a PIN), and any other may be a late one."""
        details = ["secret entry"] if self.secret_entry else []
        if reply.code:
            details.append(f"code {reply.code}")
        details.append(f"{len(reply.text)} characters not shown")
        return f"{reply.kind.value} reply to {self.verb} ({', '.join(details)})"

    def _read_reply(self) -> Reply:
        reply = parse_reply(self.stdin.readline())
        if reply.kind is ReplyKind.USAGE and reply.continued:
            for _ in range(_MAX_USAGE_LINES):
                line = self.stdin.readline()
                if not line:
                    return parse_reply(line)
                if line.startswith("520 "):
                    break
        return reply


@dataclass(frozen=True, slots=True)
class Entry:
    """What GET DATA collected: the keys (without `#`) and whether it ended by silence."""

    digits: str
    timed_out: bool


class AgiChannel:
    """The channel operations of the IVR, each one AGI command (plus a status check)."""

    def __init__(self, agi: QuietAGI) -> None:
        self._agi = agi
        # Where the call is, for the log line that says where it ended: the verb and, for
        # prompts, the sound (never an entry's keys).
        self.last_step = ""

    @property
    def env(self) -> Mapping[str, str]:
        return self._agi.env

    @property
    def hung_up(self) -> bool:
        return bool(self._agi.hung_up)

    def command(self, verb: str, *args: str | int) -> Reply:
        """Send one command; hang-ups raise CallerHungUp, rejections AgiProtocolError."""
        if verb in ("STREAM FILE", "GET DATA") and args:
            self.last_step = f"{verb} {args[0]}"
        else:
            self.last_step = verb
        return self._agi.run(verb, *args)

    def is_up(self) -> bool:
        """Ask CHANNEL STATUS; a dead channel raises CallerHungUp (via the HANGUP line)."""
        step = self.last_step
        try:
            return channel_is_up(self.command("CHANNEL STATUS"))
        finally:
            self.last_step = step  # a status check is not a step of the call

    def _missing_or_hangup(self) -> None:
        # `result=-1` to STREAM FILE / GET DATA: a missing file if the channel is still up.
        if not self.is_up():
            self._agi.hung_up = True
            raise CallerHungUp(f"channel down after {self.last_step}")

    def stream_file(self, sound: str) -> bool:
        """Play `sound` uninterruptibly; False if the file is missing (the call goes on)."""
        reply = self.command("STREAM FILE", sound, '""')
        if reply.is_minus_one:
            if reply.endpos:
                # The file was opened and partly played, so it exists: the caller left.
                self._agi.hung_up = True
                raise CallerHungUp(f"hung up during {self.last_step}")
            self._missing_or_hangup()
            return False
        return True

    def stream_file_until_key(self, sound: str, keys: str) -> str | None:
        """Play `sound` until the caller presses one of `keys`: the key, "" if played
        through, None if the file is missing (the call goes on)."""
        reply = self.command("STREAM FILE", sound, f'"{keys}"')
        if reply.is_minus_one:
            if reply.endpos:
                self._agi.hung_up = True
                raise CallerHungUp(f"hung up during {self.last_step}")
            self._missing_or_hangup()
            return None
        code = int(reply.result) if reply.result.isdigit() else 0
        return chr(code) if 0 < code < 128 and chr(code) in keys else ""

    def get_data(
        self, sound: str, timeout_ms: int, max_digits: int, *, secret: bool = False
    ) -> Entry | None:
        """Play `sound`, collect up to `max_digits` keys ended by `#` or silence.

        None means the prompt file is missing (Asterisk then collects nothing). `secret`
        marks an entry (a PIN) that nothing may repeat; no reply text is ever repeated in
        errors, and this one is also marked so in them.
        """
        if secret:
            self._agi.next_entry_is_secret()
        reply = self.command("GET DATA", sound, int(timeout_ms), int(max_digits))
        if reply.is_minus_one:
            self._missing_or_hangup()
            return None
        return Entry(reply.result, reply.timed_out)

    def set_variable(self, name: str, value: str) -> None:
        self.last_step = "SET VARIABLE"
        self._agi.set_variable(name, value)

    def verbose(self, message: str, level: int = 1) -> None:
        self.last_step = "VERBOSE"
        self._agi.verbose(message, level)

    def hangup(self) -> None:
        self.last_step = "HANGUP"
        self._agi.hangup()
        self._agi.hung_up = True

    def limit_reply_wait(self, seconds: float) -> None:
        """Wait at most `seconds` for each further reply (used when ending a call)."""
        self._agi.stdin.timeout = min(self._agi.stdin.timeout, seconds)
