"""After every console test: no password, PIN or full ID number in a page or a log line."""

from __future__ import annotations

import re

import pytest

from tests.conftest import APP_LOG, TEST_DATA, USED_SECRETS
from tests.console.conftest import SEEN_PAGES


@pytest.mark.last
def test_pages_and_logs_hold_no_secrets() -> None:
    """Every page seen by httpx or Chromium, the app log and the server's stderr are clean."""
    if not SEEN_PAGES:
        pytest.skip("no console page was seen in this run")
    secrets = sorted(s for s in USED_SECRETS if s)
    assert secrets
    logs = [APP_LOG, *TEST_DATA.glob("console-*.log")]
    texts = {f"page {i}": html for i, html in enumerate(SEEN_PAGES)}
    texts |= {str(p): p.read_text(encoding="utf-8") for p in logs if p.exists()}
    assert any("/agent" in text for text in texts.values())
    # Whole tokens only: a six-digit PIN may well occur inside a reference or a CSRF token.
    pattern = re.compile(
        r"(?<![0-9A-Za-z])(?:" + "|".join(map(re.escape, secrets)) + r")(?![0-9A-Za-z])"
    )
    leaks = [(where, m) for where, text in texts.items() if (m := pattern.search(text))]
    # Only where, never the value: the report itself must not print a secret.
    assert not leaks, f"secrets found in: {sorted({where for where, _ in leaks})}"
