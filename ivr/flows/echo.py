"""A demo script for smoke tests and the bench: take a card number, read it back."""

from __future__ import annotations

from ivr.caller import Caller
from ivr.contract import NEXT_HANGUP, VAR_NEXT
from prompts.catalogue import Prompt


def echo(caller: Caller) -> None:
    """Welcome, take a number, read it back, goodbye."""
    caller.play(Prompt.WELCOME)
    number = caller.ask(Prompt.ENTER_CARD_NUMBER, min_len=1, max_len=20)
    caller.say_digits(number)
    caller.play(Prompt.GOODBYE)
    caller.set_variable(VAR_NEXT, NEXT_HANGUP)
