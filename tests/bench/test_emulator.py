"""The bench's Asterisk emulator against the real FastAGI server: it must count a right
call as completed and a wrong one as failed, or every figure the bench prints is wrong."""

from __future__ import annotations

from bench.emulator import place_call
from bench.stats import Stats
from ivr.caller import Caller
from ivr.contract import NEXT_HANGUP, VAR_NEXT
from ivr.flows.echo import echo
from ivr.server import AgiServer
from prompts.catalogue import Prompt


def _wrong_read_back(caller: Caller) -> None:
    number = caller.ask(Prompt.ENTER_CARD_NUMBER, min_len=1, max_len=20)
    caller.say_digits(number[::-1] + "1")
    caller.set_variable(VAR_NEXT, NEXT_HANGUP)


def _no_next_step(caller: Caller) -> None:
    caller.say_digits(caller.ask(Prompt.ENTER_CARD_NUMBER, min_len=1, max_len=20))


async def _calls(flow: object, calls: int, *, max_calls: int = 8000) -> Stats:
    server = AgiServer({"echo": flow}, max_calls=max_calls)  # type: ignore[dict-item]
    port = await server.start("127.0.0.1", 0)
    stats = Stats()
    try:
        for _ in range(calls):
            await place_call(port, stats, 6, 0.0)
    finally:
        await server.drain()
    return stats


async def test_echo_calls_complete_and_their_steps_are_timed() -> None:
    """The real echo flow: every call completes and each command's step is timed."""
    stats = await _calls(echo, 20)
    assert (stats.completed, stats.errors) == (20, {})
    assert len(stats.first_command) == 20
    # 10 commands a call for 6 keys (welcome, GET DATA, 6 digits, goodbye, SET VARIABLE):
    # each after the first is a step.
    assert len(stats.steps) == 20 * 9


async def test_a_wrong_read_back_or_no_next_step_is_a_failed_call() -> None:
    """A server reading back other digits, or not setting IVR_NEXT, fails the call."""
    assert (await _calls(_wrong_read_back, 3)).errors == {"ended-early": 3}
    assert (await _calls(_no_next_step, 3)).errors == {"ended-early": 3}


async def test_a_refused_call_is_counted_as_refused() -> None:
    """A server at capacity answers FAILURE: the emulator counts it as refused."""
    stats = await _calls(echo, 2, max_calls=0)
    assert stats.errors == {"refused": 2}
