"""A scripted fake Asterisk: the caller's side of a FastAGI call, over a real TCP socket.

It sends the `agi_*` environment as Asterisk 22 does, answers each command the flows send
as Asterisk would (STREAM FILE, GET DATA, CHANNEL STATUS, SET VARIABLE, EXEC Wait,
VERBOSE, HANGUP), and records what the caller heard and keyed. Any other command gets
Asterisk's 510, so a flow that starts sending one fails its tests until this emulator
learns it. Used by tests and by `ivr12333 simulate`.

Key groups: each group is what the caller keys at one input prompt (GET DATA, or STREAM
FILE with escape digits), in order:

    `123#`  keys, then `#`              `#`  `#` alone
    `123`   keys, then silence (timeout) `-`  silence: no key at all
    `!`     hang up at this prompt

Keys are 0-9 and `*`, and A-D, which some keypads have and Asterisk returns as letters.

When the groups run out, the caller hangs up at the next input prompt. `hangup_at` hangs up
elsewhere: an int N hangs up when the Nth command arrives (1-based), a str when that prompt
is played.

Instead of scripted groups, a call can take its keys from a `key_source`: an async callback
asked at each input prompt (a person at a terminal, a program), returning one group. An
`observer` is told of each event as it happens (`Heard`, `Asked`, `Keyed`, `Paused`,
`Missing`). A prompt is interruptible when the caller's keys cut it short: GET DATA
prompts, and STREAM FILE with escape digits; STREAM FILE with "" is not. A
caller here always listens a STREAM FILE through, as Asterisk reports it: `result=0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ivr.contract import SOUNDS_SUBDIR

SILENCE = "-"
HANG_UP = "!"
# Keypads have 0-9, * and #, and some A-D too (Asterisk returns those as letters).
_GROUP_RE = re.compile(r"^([0-9A-D*]*#?|-|!)$")

DEAD_REPLY = "511 Command Not Permitted on a dead channel or intercepted channel"
INVALID_REPLY = "510 Invalid or unknown command"
# The channel is up (AST_STATE_UP).
_STATE_UP = 6
_VERBS = (
    "CHANNEL STATUS",
    "SET VARIABLE",
    "STREAM FILE",
    "GET DATA",
    "VERBOSE",
    "HANGUP",
    "EXEC",
)
_USAGE = {
    "GET DATA": "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
    "STREAM FILE": "Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
    "SET VARIABLE": "Usage: SET VARIABLE <variablename> <value>",
}
# A prompt's "length" in samples, for endpos.
_ENDPOS = 16000


@dataclass(frozen=True, slots=True)
class Heard:
    """A prompt played to the caller."""

    prompt: str
    interruptible: bool


@dataclass(frozen=True, slots=True)
class Asked:
    """The caller is asked for keys (GET DATA after its prompt, or WAIT FOR DIGIT, whose
    `prompt` is the last one heard). `timeout_ms` 0: Asterisk's default."""

    prompt: str
    max_digits: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Keyed:
    """The group the caller keyed at the input just asked. It may hold a PIN: an observer
    must not show it."""

    group: str


@dataclass(frozen=True, slots=True)
class Paused:
    """A Wait between prompts."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Missing:
    """A prompt Asterisk could not find (the caller hears nothing)."""

    prompt: str


CallEvent = Heard | Asked | Keyed | Paused | Missing
Observer = Callable[[CallEvent], None]
# Asked for one entry: (prompt id, max digits, timeout in ms) -> one key group.
KeySource = Callable[[str, int, int], Awaitable[str]]


def check_groups(keys: Sequence[str]) -> list[str]:
    """Validate key groups (see the module docstring); returns them as a list."""
    for group in keys:
        if not group or not _GROUP_RE.match(group):
            raise ValueError(f"not a key group: {group!r} (keys 0-9, * and A-D, then #; or - or !)")
    return list(keys)


@dataclass
class Transcript:
    """What happened on the call, in order."""

    # ("prompt", id) heard; ("keys", group) keyed at the prompt before; ("missing", id)
    # a prompt Asterisk could not find; ("interrupted", id) a prompt cut short by a new
    # command before the caller keyed anything; ("pause", seconds) a Wait between prompts.
    events: list[tuple[str, str]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    # "caller-hangup", "server-hangup", "agi-returned" (the server closed the socket with
    # the channel up: the dialplan goes on), "timeout" (the server fell silent).
    ended: str = ""
    # The call's agi_uniqueid: the actor of what the IVR audits about it.
    call_id: str = ""

    @property
    def heard(self) -> list[str]:
        return [value for kind, value in self.events if kind == "prompt"]

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(prompt id, key group) for each input prompt answered."""
        result = []
        last_prompt = ""
        for kind, value in self.events:
            if kind == "prompt":
                last_prompt = value
            elif kind == "keys":
                result.append((last_prompt, value))
        return result

    @property
    def missing(self) -> list[str]:
        return [value for kind, value in self.events if kind == "missing"]


def prompt_id(sound: str) -> str:
    """`ivr12333/welcome` -> `welcome`; other sounds stay as they are."""
    prefix = f"{SOUNDS_SUBDIR}/"
    return sound[len(prefix) :] if sound.startswith(prefix) else sound


def agi_environment(
    script: str, host: str, port: int, caller_number: str, unique_id: str
) -> list[tuple[str, str]]:
    """The environment Asterisk 22 sends to a FastAGI server, in its order."""
    return [
        ("agi_network", "yes"),
        ("agi_network_script", script),
        ("agi_request", f"agi://{host}:{port}/{script}"),
        ("agi_channel", f"PJSIP/sipp-{unique_id.replace('.', '')[-8:]}"),
        ("agi_language", "zh"),
        ("agi_type", "PJSIP"),
        ("agi_uniqueid", unique_id),
        ("agi_version", "22.10.1"),
        ("agi_callerid", caller_number),
        ("agi_calleridname", "unknown"),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", "12333"),
        ("agi_rdnis", "unknown"),
        ("agi_context", "ivr-agi"),
        ("agi_extension", "s"),
        ("agi_priority", "8"),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "140245566215744"),
    ]


# Asterisk's unique ids never repeat on one system; calls from two processes (two
# `ivr12333 simulate` runs against one database) must not share one either, or the second
# would inherit the first's hand-off and per-call limits. So each process counts on from
# its own random start.
_call_counter = secrets.randbelow(10**9) * 1000


def _next_unique_id() -> str:
    global _call_counter
    _call_counter += 1
    return f"1712000000.{_call_counter}"


class FakeCall:
    """One scripted call; `run()` plays it against a connected server."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: Sequence[str],
        *,
        hangup_at: int | str | None = None,
        available_sounds: set[str] | None = None,
        think_seconds: float = 0.0,
        key_source: KeySource | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._groups = check_groups(keys)
        self._hangup_at = hangup_at
        self._available = available_sounds
        self._think = think_seconds
        self._key_source = key_source
        self._observer = observer
        self._last_heard = ""
        self._pending_read: asyncio.Task[bytes] | None = None
        self._dead = False
        self.transcript = Transcript()

    def _tell(self, event: CallEvent) -> None:
        if self._observer is not None:
            self._observer(event)

    # -- the socket ----------------------------------------------------------------------

    def _send(self, *lines: str) -> None:
        self._writer.write("".join(f"{line}\n" for line in lines).encode())

    def _read_task(self) -> asyncio.Task[bytes]:
        if self._pending_read is None:
            self._pending_read = asyncio.ensure_future(self._reader.readline())
        return self._pending_read

    async def _next_line(self) -> str:
        raw = await self._read_task()
        self._pending_read = None
        return raw.decode("utf-8", errors="replace")

    async def _thinking_interrupted(self) -> bool:
        """Wait `think_seconds`; True if a new command arrived first (Asterisk then drops
        the command in progress without replying)."""
        if self._think <= 0:
            return False
        done, _ = await asyncio.wait({self._read_task()}, timeout=self._think)
        return bool(done)

    # -- the call ------------------------------------------------------------------------

    async def run(
        self, script: str, host: str, port: int, caller_number: str, time_limit: float
    ) -> Transcript:
        self.transcript.call_id = _next_unique_id()
        env = agi_environment(script, host, port, caller_number, self.transcript.call_id)
        self._send(*(f"{key}: {value}" for key, value in env), "")
        try:
            async with asyncio.timeout(time_limit):
                while True:
                    line = await self._next_line()
                    if not line:
                        if not self.transcript.ended:
                            self.transcript.ended = "agi-returned"
                        break
                    await self._answer(line.rstrip("\r\n"))
                    await self._writer.drain()
        except TimeoutError:
            self.transcript.ended = self.transcript.ended or "timeout"
        except ConnectionError:
            self.transcript.ended = self.transcript.ended or "agi-returned"
        finally:
            if self._pending_read is not None:
                self._pending_read.cancel()
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        return self.transcript

    def _hang_up(self, reply_first: str | None) -> None:
        """The caller hangs up during the current command."""
        self._dead = True
        self.transcript.ended = "caller-hangup"
        if reply_first is None:
            self._send("HANGUP", DEAD_REPLY)
        else:
            self._send(reply_first, "HANGUP")

    async def _answer(self, line: str) -> None:
        self.transcript.commands.append(line)
        if self._dead:
            self._send(DEAD_REPLY)
            return
        verb, args = _split(line)
        if verb is None:
            self._send(INVALID_REPLY)
            return
        if self._hangup_at == len(self.transcript.commands):
            media = verb in ("STREAM FILE", "GET DATA", "EXEC")
            self._hang_up("200 result=-1" if media else None)
            return
        if verb in _USAGE and not args:
            self._send(
                "520-Invalid command syntax.  Proper usage follows:",
                _USAGE[verb],
                "520 End of proper usage.",
            )
            return
        await self._dispatch(verb, args)

    async def _dispatch(self, verb: str, args: list[str]) -> None:
        if verb == "STREAM FILE":
            # No escape digits (or "") make the prompt uninterruptible.
            self._stream_file(args[0], interruptible=len(args) > 1 and bool(args[1]))
        elif verb == "GET DATA":
            await self._get_data(args)
        elif verb == "SET VARIABLE" and len(args) >= 2:
            self.transcript.variables[args[0]] = args[1]
            self._send("200 result=1")
        elif verb == "CHANNEL STATUS":
            self._send(f"200 result={_STATE_UP}")
        elif verb == "EXEC":
            self._exec(args)
        elif verb == "HANGUP":
            self._dead = True
            self.transcript.ended = "server-hangup"
            self._send("200 result=1", "HANGUP")
        elif verb == "VERBOSE":
            self._send("200 result=1")
        else:
            self._send(INVALID_REPLY)

    def _prompt(self, sound: str, interruptible: bool) -> bool:
        """Record a prompt played; False if Asterisk has no such sound file."""
        pid = prompt_id(sound)
        if self._available is not None and pid not in self._available:
            self.transcript.events.append(("missing", pid))
            self._tell(Missing(pid))
            return False
        self.transcript.events.append(("prompt", pid))
        self._last_heard = pid
        self._tell(Heard(pid, interruptible))
        return True

    def _stream_file(self, sound: str, *, interruptible: bool) -> None:
        if not self._prompt(sound, interruptible):
            self._send("200 result=-1 endpos=0")
        elif self._hangup_at == prompt_id(sound):
            self._hang_up(f"200 result=-1 endpos={_ENDPOS // 2}")
        else:
            self._send(f"200 result=0 endpos={_ENDPOS}")

    async def _next_group(self, sound: str | None, max_digits: int, timeout_ms: int) -> str | None:
        """The caller's keys at this input prompt; None if the caller hangs up here."""
        if sound is not None and self._hangup_at == prompt_id(sound):
            return None
        if await self._thinking_interrupted():
            self.transcript.events.append(("interrupted", prompt_id(sound or "")))
            return ""  # no reply: the next command has arrived
        asked = prompt_id(sound) if sound is not None else self._last_heard
        self._tell(Asked(asked, max_digits, timeout_ms))
        if self._key_source is not None:
            group = check_groups([await self._key_source(asked, max_digits, timeout_ms)])[0]
            if group == HANG_UP:
                return None
        elif not self._groups or self._groups[0] == HANG_UP:
            return None
        else:
            group = self._groups.pop(0)
        self.transcript.events.append(("keys", group))
        self._tell(Keyed(group))
        return group

    async def _get_data(self, args: list[str]) -> None:
        sound = args[0]
        timeout_ms = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        max_digits = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
        if not self._prompt(sound, interruptible=True):
            self._send("200 result=-1")  # Asterisk gives up before collecting keys
            return
        group = await self._next_group(sound, max_digits, timeout_ms)
        if group is None:
            self._hang_up("200 result=-1")
        elif group:
            self._send(_get_data_reply(group, max_digits))

    def _exec(self, args: list[str]) -> None:
        app = args[0].lower() if args else ""
        if app == "wait":
            # A pause between prompts: recorded so a test can see where it fell.
            self.transcript.events.append(("pause", args[1] if len(args) > 1 else ""))
            self._tell(Paused(_seconds(args[1] if len(args) > 1 else "")))
            self._send("200 result=0")
            return
        self._send("200 result=-2")  # no other application is run by the flows


def _seconds(text: str) -> float:
    """Wait's argument in seconds; what Asterisk cannot read it treats as no wait."""
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if value > 0 else 0.0


def _get_data_reply(group: str, max_digits: int) -> str:
    """GET DATA's reply to a key group, as res_agi.c words it."""
    if group == SILENCE:
        return "200 result= (timeout)"
    digits = group.rstrip("#")
    if len(digits) >= max_digits:
        return f"200 result={digits[:max_digits]}"  # stopped at max digits
    if group.endswith("#"):
        return f"200 result={digits}"
    return f"200 result={digits} (timeout)"


def _split(line: str) -> tuple[str | None, list[str]]:
    """The command's verb (upper case) and its arguments, quotes removed."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None, []
    upper = [w.upper() for w in words]
    for verb in _VERBS:
        parts = verb.split()
        if upper[: len(parts)] == parts:
            return verb, words[len(parts) :]
    return None, []


async def run_call(
    host: str,
    port: int,
    script: str,
    keys: Sequence[str],
    *,
    hangup_at: int | str | None = None,
    caller_number: str = "13800138000",
    available_sounds: set[str] | None = None,
    think_seconds: float = 0.0,
    time_limit: float = 30.0,
    key_source: KeySource | None = None,
    observer: Observer | None = None,
) -> Transcript:
    """Connect to a FastAGI server as Asterisk would and play one call: keys from the
    scripted groups, or from `key_source` when given; events told to `observer`."""
    reader, writer = await asyncio.open_connection(host, port)
    call = FakeCall(
        reader,
        writer,
        keys,
        hangup_at=hangup_at,
        available_sounds=available_sounds,
        think_seconds=think_seconds,
        key_source=key_source,
        observer=observer,
    )
    return await call.run(script, host, port, caller_number, time_limit)
