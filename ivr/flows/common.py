"""What every service does the same way: ask for card, PIN and ID in the seed's order,
prove them to the backend (offering to key a wrong PIN again), speak refusals, end the
call."""

from __future__ import annotations

import enum
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
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
    Proven,
    Stale,
    TooManyTries,
    WrongPin,
)
from backend.pinrules import PIN_LENGTH, PinRule
from backend.services.verify import prove_holder
from backend.settings import get_settings
from ivr.agi.bridge import await_
from ivr.caller import Caller
from ivr.contract import NEXT_HANGUP, VAR_NEXT
from prompts.catalogue import PinPrompt, Prompt

T = TypeVar("T")
log = structlog.get_logger("ivr.flows")

# Longest card entry read: room for a letter or two keyed as digits past the longest card.
CARD_MAX_KEYED = 12
ID_LENGTH = 18
# Checks of card, ID and PIN in one service: a wrong PIN or a mismatch is offered again
# this many times in all (the backend's own limits still count every check).
CHECKS_PER_SERVICE = 3


class CallOver(Exception):
    """The call is finished (goodbye said, or handed to the agent queue)."""


class Served(enum.Enum):
    """How a service ended, for what the caller hears next."""

    DONE = "done"  # the caller got what they called for
    NOT_DONE = "not-done"  # refused, cancelled or declined: back to the card menu


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
        self.caller.note("step", step=step)

    def backend(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a backend use case. ServiceUnavailable (the database down, hung or busy)
        goes on to the server's one exit for it (ivr.server): the caller hears the
        dialplan's one apology and its fallback."""
        return await_(coro)

    def goodbye(self) -> None:
        self.caller.play(Prompt.GOODBYE)
        self.caller.set_variable(VAR_NEXT, NEXT_HANGUP)
        self.caller.hangup()
        raise CallOver


# What a keypad entry may hold: digits (keys A-D are never part of a number), and for an
# ID number digits with a final X (keyed as *).
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]", re.ASCII)


def _digits_only(entry: str) -> Prompt | None:
    return None if _DIGITS.fullmatch(entry) else Prompt.INVALID_KEY


def _valid_id(entry: str) -> Prompt | None:
    if not _ID_SHAPE.fullmatch(entry):
        return Prompt.INVALID_KEY
    return None if idnumber.is_valid(entry) else Prompt.ID_NUMBER_INVALID


def _card_digits(entry: str) -> Prompt | None:
    """A wrong length is most often the card's letter keyed as a digit: say so at once."""
    if not _DIGITS.fullmatch(entry):
        return Prompt.INVALID_KEY
    if len(entry) != get_settings().card_digits:
        return Prompt.CARD_NUMBER_WRONG_LENGTH
    return None


def ask_card_digits(call: Call) -> str:
    call.at("card-number")
    # Any length is taken here so that a wrong one gets its own answer, not "invalid key".
    digits = call.caller.ask(
        Prompt.ENTER_CARD_NUMBER, min_len=1, max_len=CARD_MAX_KEYED, check=_card_digits
    )
    call.card_masked = mask_card(digits)
    return digits


def ask_pin(call: Call, prompt: PinPrompt = Prompt.ENTER_PIN) -> str:
    call.at(prompt)
    return call.caller.ask(
        prompt, min_len=PIN_LENGTH, max_len=PIN_LENGTH, secret=True, check=_digits_only
    )


def ask_new_pin(call: Call, prompt: PinPrompt) -> str:
    """Any length is taken here, so a wrong length is answered by the length rule."""
    call.at(prompt)
    return call.caller.ask(
        prompt, min_len=1, max_len=PIN_LENGTH + 2, secret=True, check=_digits_only
    )


def ask_id_number(call: Call) -> str:
    """The check digit is verified before anything else is asked."""
    call.at("id-number")
    return call.caller.ask(
        Prompt.ENTER_ID_NUMBER,
        min_len=ID_LENGTH,
        max_len=ID_LENGTH,
        secret=True,
        star_is_x=True,
        check=_valid_id,
    )


@dataclass(frozen=True)
class Keyed:
    """What the caller keyed to prove they hold the card; never logged or repeated."""

    card: str = field(repr=False)
    pin: str = field(repr=False)
    id_number: str = field(repr=False)


def prove(call: Call, action: str) -> tuple[Keyed, Proven] | None:
    """Card number, PIN, ID number (the order cardholders are told), then the check.

    A wrong PIN is said with the tries left before the card locks, and only the PIN is
    asked again; a card and ID that do not match are asked again, the PIN kept. None
    when the check did not succeed in this service (the caller has heard why); a locked
    or unusable card ends the call."""
    card = ask_card_digits(call)
    pin = ask_pin(call)
    keyed = Keyed(card=card, pin=pin, id_number=ask_id_number(call))
    for check in range(1, CHECKS_PER_SERVICE + 1):
        call.at("verify")
        outcome = call.backend(
            prove_holder(
                keyed.card, keyed.id_number, keyed.pin, call.actor, action, call.caller_number
            )
        )
        if isinstance(outcome, Proven):
            return keyed, outcome
        say_refusal(call, outcome)
        if check == CHECKS_PER_SERVICE:
            return None
        if isinstance(outcome, WrongPin):
            keyed = replace(keyed, pin=ask_pin(call, Prompt.ENTER_PIN_AGAIN))
        elif isinstance(outcome, NoMatch):
            keyed = replace(keyed, card=ask_card_digits(call), id_number=ask_id_number(call))
        else:
            return None
    return None


RULE_PROMPTS: dict[PinRule, Prompt] = {
    PinRule.LENGTH: Prompt.PIN_RULE_LENGTH,
    PinRule.INITIAL: Prompt.PIN_RULE_INITIAL,
    PinRule.REPEATED: Prompt.PIN_RULE_REPEATED,
    PinRule.SEQUENCE: Prompt.PIN_RULE_SEQUENCE,
    PinRule.NEAR_SEQUENCE: Prompt.PIN_RULE_NEAR_SEQUENCE,
    PinRule.KEYPAD: Prompt.PIN_RULE_KEYPAD,
    PinRule.COMMON: Prompt.PIN_RULE_COMMON,
    PinRule.SAME_AS_OLD: Prompt.PIN_RULE_SAME_AS_OLD,
    PinRule.BIRTH_DATE: Prompt.PIN_RULE_BIRTH_DATE,
    PinRule.ID_SUFFIX: Prompt.PIN_RULE_ID_SUFFIX,
    PinRule.CARD_SUFFIX: Prompt.PIN_RULE_CARD_SUFFIX,
}


def say_rule(call: Call, rule: PinRule) -> None:
    call.caller.play(RULE_PROMPTS[rule])


Refusal = NoMatch | WrongPin | Locked | NotUsable | TooManyTries | Stale


def say_refusal(call: Call, outcome: Refusal) -> None:
    """Card/ID mismatch, wrong PIN with tries left, locked or unusable card, checks paused
    after too many wrong numbers, or a proof gone stale, in words.

    Locked and unusable cards, and paused checks, end the call: trying again at once
    cannot help them."""
    caller = call.caller
    if isinstance(outcome, NoMatch):
        caller.play(Prompt.NO_MATCH)
    elif isinstance(outcome, WrongPin):
        # "Wrong PIN. N more wrong PINs lock the card."
        caller.play(Prompt.WRONG_PIN)
        caller.say_count(outcome.attempts_left)
        caller.play(Prompt.WRONG_PIN_LOCKS)
    elif isinstance(outcome, Stale):
        caller.play(Prompt.START_AGAIN)
    elif isinstance(outcome, Locked):
        caller.play(Prompt.CARD_LOCKED)
        call.goodbye()
    elif isinstance(outcome, TooManyTries):
        caller.play(Prompt.IDENTITY_PAUSED)
        call.goodbye()
    else:
        caller.play(Prompt.CARD_NOT_USABLE)
        call.goodbye()
