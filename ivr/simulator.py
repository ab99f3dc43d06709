"""One call through the real FastAGI server in this process, placed by the fake Asterisk.

Shared by `ivr12333 simulate` (scripted, or a person or a program at each entry) and the
call-time bench (`bench.cx`): the server runs on a free loopback port for the one call, and
how the call ended is said in the words of the interactive protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ivr.contract import NEXT_AGENT, NEXT_HANGUP, NEXT_UNAVAILABLE, VAR_NEXT
from ivr.fake_asterisk import KeySource, Observer, Transcript, run_call
from ivr.server import AgiServer, FlowFn, ServerError
from prompts.catalogue import PIN_PROMPTS

# 8 kHz, 16-bit signed linear: bytes per second of a built `.sln` prompt.
SLN_BYTES_PER_SECOND = 16000


def asks_for_pin(prompt_id: str) -> bool:
    """Whether what is keyed after `prompt_id` is a PIN (never to be shown). The wire
    carries no "secret" mark on an entry, so a PIN entry is known by its prompt."""
    return prompt_id in PIN_PROMPTS


@dataclass(frozen=True)
class SimulatedCall:
    transcript: Transcript
    # Unexpected errors the server met (a flow that raised); empty on a clean call.
    errors: tuple[ServerError, ...]

    @property
    def ivr_next(self) -> str | None:
        """IVR_NEXT as the flow left it for the dialplan, if it set it."""
        return self.transcript.variables.get(VAR_NEXT)

    @property
    def how(self) -> str:
        """How the call ended: caller-hangup, ivr-hangup (the server hung up, or left the
        dialplan to: IVR_NEXT=hangup), agent, unavailable, agi-returned (the script
        returned without saying what next) or timeout (the server fell silent)."""
        ended = self.transcript.ended
        if ended == "caller-hangup":
            return "caller-hangup"
        if ended == "server-hangup":
            return "ivr-hangup"
        if ended == "agi-returned":
            return {
                NEXT_AGENT: "agent",
                NEXT_UNAVAILABLE: "unavailable",
                NEXT_HANGUP: "ivr-hangup",
            }.get(self.ivr_next or "", "agi-returned")
        return ended or "agi-returned"


def flow_table() -> Mapping[str, FlowFn]:
    """The AGI scripts the service serves, by name."""
    from ivr.scripts import SCRIPTS

    return SCRIPTS


async def place_call(
    script: str,
    *,
    keys: Sequence[str] = (),
    key_source: KeySource | None = None,
    observer: Observer | None = None,
    caller_number: str = "13800138000",
    hangup_at: int | str | None = None,
    time_limit: float = 120.0,
) -> SimulatedCall:
    """Serve one call with the real flows on a free loopback port and place it."""
    server = AgiServer(flow_table(), drain_seconds=5.0)
    port = await server.start("127.0.0.1", 0)
    try:
        transcript = await run_call(
            "127.0.0.1",
            port,
            script,
            keys,
            hangup_at=hangup_at,
            caller_number=caller_number,
            key_source=key_source,
            observer=observer,
            time_limit=time_limit,
        )
    finally:
        await server.drain()
    return SimulatedCall(transcript, tuple(server.errors))


class PromptLengths:
    """Seconds of each built prompt in a sound folder (`prompts.build.sound_dir`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._known: dict[str, float | None] = {}

    def __call__(self, prompt_id: str) -> float | None:
        """The prompt's length in seconds; None when it is not built."""
        if prompt_id not in self._known:
            try:
                size = (self.directory / f"{prompt_id}.sln").stat().st_size
            except (FileNotFoundError, NotADirectoryError):
                self._known[prompt_id] = None
            else:
                self._known[prompt_id] = round(size / SLN_BYTES_PER_SECOND, 3)
        return self._known[prompt_id]


def built_prompts(out_dir: Path | None = None, *, build: bool = True) -> PromptLengths:
    """The prompts' lengths under `out_dir` (default `<data_dir>/sounds`), built first from
    the catalogue when `build` (the build skips prompts already up to date)."""
    from prompts.build import build as build_prompts
    from prompts.build import default_out_dir, sound_dir

    out = out_dir or default_out_dir()
    if build:
        build_prompts(out)
    return PromptLengths(sound_dir(out))
