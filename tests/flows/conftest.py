"""Flow tests: the moments the service believes it is (office hours, holidays)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from backend.settings import reset_settings
from tests.conftest import Phone

__all__ = ["Phone"]

# Friday 27 November 2026: a working day.
OPEN = "2026-11-27T10:00:00+08:00"
LUNCH = "2026-11-27T12:30:00+08:00"
EVENING = "2026-11-27T20:00:00+08:00"
NATIONAL_DAY = "2026-10-01T10:00:00+08:00"  # a public holiday
MAKE_UP_SUNDAY = "2026-09-20T10:00:00+08:00"  # a Sunday worked for the National Day break


@pytest.fixture
def clock() -> Iterator[Any]:
    """Set the moment the service believes it is: `clock(OPEN)`."""

    def set_now(moment: str) -> None:
        os.environ["IVR_NOW_OVERRIDE"] = moment
        reset_settings()

    set_now(OPEN)
    yield set_now
    os.environ.pop("IVR_NOW_OVERRIDE", None)
    reset_settings()
