"""CSRF tokens: every POST form carries its session's token.

A logged-in session's token is the random nonce in its row; before login it is derived from
the browser's anonymous token (console/sessions.py). SameSite=Strict cookies are the first
line; this is the second.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from console import sessions

FIELD = "csrf_token"


class CsrfRefused(Exception):
    """A POST without the token of this session."""


async def csrf_protect(request: Request) -> None:
    """Router dependency: loads the session for every page; every POST must carry its token."""
    session = await sessions.of(request)
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get(FIELD)
    # Bytes: compare_digest refuses str with characters outside ASCII.
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise CsrfRefused()
