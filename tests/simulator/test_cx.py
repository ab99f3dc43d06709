"""`make cx`: the happy-path call time, on made-up events (the arithmetic) and on the real
flows through the real server (the key table still walks each flow's happy path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cx import (
    HAPPY_PATHS,
    KEY_SECONDS,
    THINK_SECONDS,
    NotBuilt,
    call_time,
    catalogue_lengths,
    measure,
    report,
)
from ivr.fake_asterisk import Asked, CallEvent, Heard, Keyed, Paused
from ivr.simulator import SLN_BYTES_PER_SECOND, PromptLengths, built_prompts

LENGTHS = {
    "welcome": 3.0,
    "main-menu": 5.0,
    "enter-card-number": 4.0,
    "intro": 1.0,
    "enter-pin": 2.0,
    "done": 2.0,
    "notice": 1.5,
    "card-menu": 6.0,
}
EVENTS: list[CallEvent] = [
    Heard("welcome", False),
    Heard("main-menu", True),
    Asked("main-menu", 1, 5000),
    Keyed("2"),  # 2 s + 1 key
    Heard("enter-card-number", True),
    Asked("enter-card-number", 10, 6000),
    Keyed("12345678#"),  # 2 s + 9 keys
    Heard("intro", True),  # a STREAM FILE with escape digits
    Paused(0.5),
    Heard("enter-pin", True),
    Asked("enter-pin", 7, 6000),
    Keyed("123456"),  # 2 s + 6 keys + 6 s of silence ending it
    Heard("done", False),
    Paused(0.6),
    Heard("notice", True),  # no entry follows that the caller answers
    Heard("card-menu", True),
    Asked("card-menu", 1, 5000),  # the caller hangs up here
]


def test_call_time_arithmetic() -> None:
    """Listening: every prompt, pauses, 2 s and 0.4 s a key per entry, and the timeout of
    an entry ended by silence. Keying over: interruptible prompts leading (through pauses
    and other interruptible prompts) to an answered entry cost nothing. The prompt of the
    entry where the caller hangs up counts only when the path listens to it."""
    entries = 3 * THINK_SECONDS + 16 * KEY_SECONDS + 6.0
    time = call_time(EVENTS, LENGTHS.get, hear_last=False)
    assert time.entries == 3 and time.keys == 16 and time.waiting == 6.0
    assert time.pauses == pytest.approx(1.1)
    assert time.prompt_seconds == pytest.approx(18.5)
    assert time.listening == pytest.approx(18.5 + 1.1 + entries)
    assert time.listening == pytest.approx(38.0)
    skipped = [p.id for p in time.prompts if p.skipped_keying]
    assert skipped == ["main-menu", "enter-card-number", "intro", "enter-pin"]
    assert time.keying_over == pytest.approx(3.0 + 2.0 + 1.5 + 1.1 + entries)
    listened_last = call_time(EVENTS, LENGTHS.get, hear_last=True)
    assert listened_last.listening == pytest.approx(38.0 + 6.0)
    assert listened_last.keying_over == pytest.approx(time.keying_over + 6.0)


def test_an_uninterruptible_prompt_breaks_the_chain() -> None:
    """An interruptible prompt followed by one that is not, before the entry, is heard in
    full when keying over; a silent entry costs its timeout; an unbuilt prompt is an error."""
    events: list[CallEvent] = [
        Heard("intro", True),
        Heard("done", False),
        Heard("main-menu", True),
        Asked("main-menu", 1, 5000),
        Keyed("-"),
    ]
    time = call_time(events, LENGTHS.get, hear_last=False)
    assert [p.skipped_keying for p in time.prompts] == [False, False, True]
    assert time.keying_over == pytest.approx(1.0 + 2.0 + THINK_SECONDS + 5.0)
    assert time.listening == pytest.approx(1.0 + 2.0 + 5.0 + THINK_SECONDS + 5.0)
    with pytest.raises(NotBuilt, match="unknown-prompt"):
        call_time([Heard("unknown-prompt", False)], LENGTHS.get, hear_last=False)


@pytest.fixture(scope="module")
def lengths(tmp_path_factory: pytest.TempPathFactory) -> PromptLengths:
    return built_prompts(tmp_path_factory.mktemp("cx-sounds"))


async def test_happy_paths_through_the_real_flows(db: str, lengths: PromptLengths) -> None:
    """Each happy path of the key table reaches its flow's success on a fresh card and
    ends with the caller hanging up; its entries and keys are those of the table, its
    prompt time that of the built files, and keying over is shorter than listening."""
    results = await measure(lengths)
    assert [r.path.name for r in results] == [p.name for p in HAPPY_PATHS]
    same_lengths = {"card": "0" * 8, "id": "0" * 18, "pin": "0" * 6, "new_pin": "0" * 6}
    for result in results:
        groups = result.path.keys.format(**same_lengths).split()
        time = result.time
        assert result.how == "caller-hangup"
        assert time.entries == len(groups)
        assert time.keys == sum(len(g) for g in groups)
        assert time.waiting == 0
        heard = [p.id for p in time.prompts]
        assert heard[0] == "welcome" and result.path.success in heard
        for prompt in time.prompts:
            size = (lengths.directory / f"{prompt.id}.sln").stat().st_size
            assert prompt.seconds == pytest.approx(size / SLN_BYTES_PER_SECOND, abs=0.001)
        expected = (
            time.prompt_seconds
            + time.pauses
            + THINK_SECONDS * time.entries
            + KEY_SECONDS * time.keys
        )
        assert time.listening == pytest.approx(expected, abs=0.01)
        assert 0 < time.keying_over < time.listening
        # Nothing the caller keyed is kept in the record, only how many keys.
        assert all("group" not in e for e in result.events)
    # The call-time goals hold for the prompts as written and built (lengths of sound
    # files, not a clock): a longer prompt or an extra step on a happy path fails here.
    assert [r.over_goal for r in results] == [[] for _ in results]
    table = "\n".join(report(results, catalogue_lengths(lengths)))
    for path in HAPPY_PATHS:
        assert path.name in table
    assert f"{HAPPY_PATHS[0].goal_listening:g} s" in table


def test_lengths_of_unbuilt_prompts_are_unknown(tmp_path: Path) -> None:
    """A prompt with no built file has no length (the protocol's `seconds: null`)."""
    lengths = PromptLengths(tmp_path)
    (tmp_path / "welcome.sln").write_bytes(b"\0" * 24000)
    assert lengths("welcome") == 1.5
    assert lengths("main-menu") is None
