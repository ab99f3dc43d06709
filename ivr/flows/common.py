"""What every flow does the same way: ask for card, PIN and ID; call the backend; speak
its answers; end the call; hand over to an agent."""

from __future__ import annotations

import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from backend import idnumber
from backend.masking import mask_card
from backend.outcomes import (
    Actor,
    Channel,
    Locked,
    NoMatch,
    NotUsable,
    Stale,
    TooManyTries,
    WrongPin,
)
from backend.pinrules import PIN_LENGTH, PinRule
from backend.settings import get_settings
from ivr.agi.bridge import await_
from ivr.caller import Caller
from ivr.contract import NEXT_HANGUP, VAR_NEXT

T = TypeVar("T")
log = structlog.get_logger("ivr.flows")

# Longest card entry read: room for a letter or two keyed as digits past the longest card.
CARD_MAX_KEYED = 12
ID_LENGTH = 18


class CallOver(Exception):
    """The call is finished (goodbye said, or handed to the agent queue)."""


@dataclass
class Call:
    """One call's state as the flows go: who acts, and where the caller is now."""

    caller: Caller
    step: str = "start"
    card_masked: str | None = None
    events: list[str] = field(default_factory=list)

    @property
    def actor(self) -> Actor:
        return Actor(Channel.IVR, self.caller.info.call_id)

    @property
    def caller_number(self) -> str | None:
        """The number Asterisk gave for the caller; None when withheld."""
        return self.caller.info.caller_number or None

    def at(self, step: str) -> None:
        self.step = step
        # Every later line of the call names its step, the server's last one included.
        structlog.contextvars.bind_contextvars(step=step)
        log.info("step", step=step)

    def backend(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a backend use case. ServiceUnavailable (the database down, hung or busy)
        goes on to the server's one exit for it (ivr.server): the caller hears the
        dialplan's one apology and its fallback."""
        return await_(coro)

    def goodbye(self) -> None:
        self.caller.play("goodbye")
        self.caller.set_variable(VAR_NEXT, NEXT_HANGUP)
        self.caller.hangup()
        raise CallOver


# What a keypad entry may hold: digits (keys A-D are never part of a number), and for an
# ID number digits with a final X (keyed as *).
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]", re.ASCII)


def _digits_only(entry: str) -> str | None:
    return None if _DIGITS.fullmatch(entry) else "invalid-key"


def _valid_id(entry: str) -> str | None:
    if not _ID_SHAPE.fullmatch(entry):
        return "invalid-key"
    return None if idnumber.is_valid(entry) else "id-number-invalid"


def _card_digits(entry: str) -> str | None:
    """A wrong length is most often the card's letter keyed as a digit: say so at once."""
    if not _DIGITS.fullmatch(entry):
        return "invalid-key"
    return None if len(entry) == get_settings().card_digits else "card-number-wrong-length"


def ask_card_digits(call: Call) -> str:
    call.at("card-number")
    # Any length is taken here so that a wrong one gets its own answer, not "invalid key".
    digits = call.caller.ask(
        "enter-card-number", min_len=1, max_len=CARD_MAX_KEYED, validate=_card_digits
    )
    call.card_masked = mask_card(digits)
    return digits


def ask_pin(call: Call, prompt: str = "enter-pin") -> str:
    call.at(prompt)
    return call.caller.ask(
        prompt, min_len=PIN_LENGTH, max_len=PIN_LENGTH, secret=True, validate=_digits_only
    )


def ask_new_pin(call: Call, prompt: str) -> str:
    """Any length is taken here, so a wrong length is answered by the length rule."""
    call.at(prompt)
    return call.caller.ask(
        prompt, min_len=1, max_len=PIN_LENGTH + 2, secret=True, validate=_digits_only
    )


def ask_id_number(call: Call) -> str:
    """The check digit is verified before anything else is asked."""
    call.at("id-number")
    return call.caller.ask(
        "enter-id-number",
        min_len=ID_LENGTH,
        max_len=ID_LENGTH,
        secret=True,
        star_is_x=True,
        validate=_valid_id,
    )


def say_rule(call: Call, rule: PinRule) -> None:
    call.caller.play(f"pin-rule-{rule}")


Refusal = NoMatch | WrongPin | Locked | NotUsable | TooManyTries | Stale


def say_refusal(call: Call, outcome: Refusal) -> None:
    """Card/ID mismatch, wrong PIN with tries left, locked or unusable card, checks paused
    after too many wrong numbers, or a proof gone stale, in words.

    Locked and unusable cards, and paused checks, end the call: trying again at once
    cannot help them."""
    caller = call.caller
    if isinstance(outcome, NoMatch):
        caller.play("no-match")
    elif isinstance(outcome, WrongPin):
        caller.play("wrong-pin")
        caller.say_count(outcome.attempts_left)
        caller.play("attempts-left-suffix")
    elif isinstance(outcome, Stale):
        caller.play("start-again")
    elif isinstance(outcome, Locked):
        caller.play("card-locked")
        call.goodbye()
    elif isinstance(outcome, TooManyTries):
        caller.play("identity-paused")
        call.goodbye()
    else:
        caller.play("card-not-usable")
        call.goodbye()
