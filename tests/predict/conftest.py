from __future__ import annotations

from pathlib import Path

import pytest

from tests.predict import network


@pytest.fixture(scope="session")
def cdws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated 3-hospital network's DuckDB files, built once per test process."""
    return network.build(tmp_path_factory.mktemp("network"))
