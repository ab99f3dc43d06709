"""The cluster tests (etcd, Patroni, real failovers): marked `cluster`, and run only when
asked for (`pytest -m cluster`, `make cluster-local`), since they take minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expression = config.getoption("markexpr", "") or ""
    asked = "cluster" in expression and "not cluster" not in expression
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)
            if not asked:
                item.add_marker(pytest.mark.skip(reason="cluster test: pytest -m cluster"))
