from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.settings import reset_settings
from prompts.build import BuildReport, build


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set IVR_* variables on the returned monkeypatch, then call reset_settings()."""
    reset_settings()
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


@pytest.fixture(scope="session")
def full_build(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    """The whole catalogue built once; the tests only read it."""
    reset_settings()
    out = tmp_path_factory.mktemp("sounds")
    return build(out, recorded_dir=out / "no-recordings")


def sounds_out(report: BuildReport) -> Path:
    """The --out directory a report's sound_dir was built under."""
    return report.sound_dir.parent.parent
