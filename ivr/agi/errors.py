"""Exceptions raised by the AGI adapter."""

from __future__ import annotations


class CallerHungUp(Exception):
    """The caller hung up, the channel is dead, or Asterisk closed or stopped answering."""

    # Messages name verbs, reply kinds and prompts, never what Asterisk or the caller sent:
    # the log may show them (see backend.logsetup).
    message_is_safe = True


class AgiProtocolError(Exception):
    """Asterisk sent something the adapter cannot understand, or rejected a command."""

    message_is_safe = True


class CallEnding(BaseException):
    """Thrown into a call's flow when the server must end the call (shutdown drain).

    A BaseException so that a flow's `except Exception` cannot swallow it.
    """
