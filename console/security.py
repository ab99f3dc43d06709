"""Response headers every page gets: no caching of card data, no framing, a strict CSP."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def apply(headers: MutableHeaders) -> None:
    for name, value in PAGE_HEADERS.items():
        headers[name] = value
