"""A known set of calls, placed through the fake Asterisk on a real FastAGI server, and
what each of them must leave in the metrics and on the wallboard.

The server must believe it is in office hours (for the hand-off) and lock a card after two
wrong PINs (`SERVER_ENV`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ivr.fake_asterisk import Transcript, run_call
from tests.conftest import USED_SECRETS, IssuedCard, make_pin

# Friday 27 November 2026, 10:00 in Shanghai: agents are on duty.
SERVER_ENV = {"IVR_NOW_OVERRIDE": "2026-11-27T10:00:00+08:00", "IVR_LOCKOUT_LIMIT": "2"}

# How the calls ended, by (script, outcome).
CALLS = {
    ("main", "served"): 2,  # a PIN change and a loss report
    ("main", "agent"): 1,  # 0 at the card menu
    ("main", "hung_up"): 1,  # hung up at the card menu
    ("change-pin", "ended"): 2,  # two wrong PINs (the second locks the card), goodbye
}
LOCKOUTS = {"ivr": 1}
LOSS_REPORTS = {"ivr": 1}
SELF_SERVICES = {"change_pin": 1, "report_loss": 1}
HANDOFFS = {"caller-asked": 1}
CALLER_NUMBER = "13912345678"


@dataclass
class Placed:
    transcripts: list[Transcript]
    keyed: set[str]  # every number a caller keyed or called from, for the label scan


def _id_keys(id_number: str) -> str:
    return id_number.replace("X", "*") + "#"


async def place(port: int, issue: Callable[..., Awaitable[IssuedCard]]) -> Placed:
    """Place the calls one after another; returns their transcripts."""
    initial = await issue()
    loss_pin = make_pin()
    reported = await issue(pin=loss_pin)
    locking = await issue()
    new_pin = make_pin()
    wrong = "907155"
    USED_SECRETS.add(wrong)

    async def call(script: str, keys: list[str]) -> Transcript:
        return await run_call(
            "127.0.0.1", port, script, keys, caller_number=CALLER_NUMBER, time_limit=60
        )

    scripts: list[tuple[str, list[str]]] = [
        (
            "main",
            [
                "2",
                f"{initial.digits}#",
                "123456#",
                _id_keys(initial.id_number),
                f"{new_pin}#",
                f"{new_pin}#",
            ],
        ),
        (
            "main",
            ["1", f"{reported.digits}#", f"{loss_pin}#", _id_keys(reported.id_number), "1"],
        ),
        ("main", ["0"]),
        ("main", ["!"]),
    ]
    for _ in range(2):
        scripts.append(
            # * when asked for the PIN again: back, and the script's goodbye.
            ("change-pin", [f"{locking.digits}#", f"{wrong}#", _id_keys(locking.id_number), "*"])
        )
    transcripts = [await call(script, keys) for script, keys in scripts]
    keyed: set[str] = {CALLER_NUMBER, new_pin, loss_pin, wrong, "123456"}
    for card in (initial, reported, locking):
        keyed |= {card.digits, card.card_number, card.id_number, card.id_number[:-1]}
    return Placed(transcripts, keyed)


async def wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Poll `predicate` until it holds (rows are written just after a call ends)."""
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110 - another process writes the rows
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def server_settings() -> Iterator[None]:
    """`SERVER_ENV` for a server in this process (the `phone` fixture's), then as before."""
    from backend.settings import reset_settings

    saved = {key: os.environ.get(key) for key in SERVER_ENV}
    os.environ.update(SERVER_ENV)
    reset_settings()
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        reset_settings()


def expected_total(table: dict[Any, int]) -> int:
    return sum(table.values())
