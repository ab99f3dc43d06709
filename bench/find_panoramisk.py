"""Finding an interpreter with panoramisk 1.4 for the same-run comparison (bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PANORAMISK_APP = BENCH_DIR / "panoramisk_echo.py"
PANORAMISK_VENV_PYTHON = BENCH_DIR / ".venv-panoramisk" / "bin" / "python"


def find_panoramisk(choice: str) -> tuple[str | None, str]:
    """The interpreter to run the panoramisk app with, or None and why not."""
    if choice == "none":
        return None, "not asked for"
    candidates = [choice] if choice != "auto" else [str(PANORAMISK_VENV_PYTHON), sys.executable]
    for python in candidates:
        if not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('panoramisk'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return python, f"panoramisk {probe.stdout.strip()} under {python}"
    return None, "panoramisk not installed (see bench/README.md)"
