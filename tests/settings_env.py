"""Settings from the environment for the length of a block, then as they were."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping

from backend.settings import reset_settings


@contextlib.contextmanager
def settings_environment(
    values: Mapping[str, str | None], also_restore: Iterable[str] = ()
) -> Iterator[None]:
    """Set (or, for None, remove) `values` in the environment and read the settings
    again; afterwards put back those names and `also_restore` (names the block itself may
    change) as they were, and read the settings again."""
    saved = {name: os.environ.get(name) for name in [*values, *also_restore]}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_settings()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()
