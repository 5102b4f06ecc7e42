"""A small network generated once per test session, shared by the read-only tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pmhub.synth.service import SynthResult, generate

SMALL: dict[str, Any] = {"sites": 3, "patients": 600, "years": 6, "seed": 11}


@pytest.fixture(scope="session")
def omop_net(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    out = tmp_path_factory.mktemp("omop") / "net"
    return generate(out, fmt="omop", workers=1, **SMALL)


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
