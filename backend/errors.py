"""Exceptions the callers of the use cases can turn into words."""

from __future__ import annotations


class BackendError(Exception):
    """Base of every failure the backend raises on purpose."""


class InvalidInput(BackendError):
    """Input that can never be right (malformed ID, card number or PIN); `code` names it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DuplicateCard(BackendError):
    """A card with this number (or these digits for this holder) exists already."""


class UnknownCard(BackendError):
    """No card with this number."""


class ServiceUnavailable(BackendError):
    """The database could not be reached, did not answer in time, or failed: the step was
    not done (or, failing during its commit, not confirmed). Raised with nothing chained
    and a message of fixed words, never a statement or a value."""

    message_is_safe = True
