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
    """The database could not be reached or failed; nothing was changed."""
