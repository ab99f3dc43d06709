"""CSRF tokens: an HMAC of the session's nonce, sent back in every POST form."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from console.config import get_console_settings
from console.sessions import Session

FIELD = "csrf_token"


class CsrfRefused(Exception):
    """A POST without the token of this session."""


def token_for(session: Session) -> str:
    key = get_console_settings().secret_bytes
    return hmac.new(key, b"csrf:" + session.nonce.encode(), hashlib.sha256).hexdigest()


async def csrf_protect(request: Request) -> None:
    """Router dependency: every POST must carry this session's token."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get(FIELD)
    session: Session = request.state.session
    if not isinstance(sent, str) or not hmac.compare_digest(sent, token_for(session)):
        raise CsrfRefused()
