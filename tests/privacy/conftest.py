"""Shared helpers of the privacy tests: the UCI Adult data and small policies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult"
ADULT_QIS = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
]
# ARX 3.9.2's optimum for k=5, suppression <= 1 % (BENCHMARKS.md), levels in ADULT_QIS order.
ARX_OPTIMUM = (0, 3, 0, 1, 3, 1, 1, 2)


def adult_dir() -> Path:
    # A worktree or clone elsewhere names the shared folder in PMHUB_SHARED_DATA.
    shared = os.environ.get("PMHUB_SHARED_DATA")
    for candidate in (ADULT, *([Path(shared) / "adult"] if shared else [])):
        if (candidate / "adult.csv").exists():
            return candidate
    pytest.skip("the UCI Adult data (shared/data/adult) is not beside the repository")


def adult_policy(extra_models: dict[str, Any] | None = None) -> dict[str, Any]:
    folder = adult_dir()
    columns: dict[str, Any] = {
        q: {"action": "generalize", "hierarchy": {"file": str(folder / f"adult_hierarchy_{q}.csv")}}
        for q in ADULT_QIS
    }
    columns["salary-class"] = {"action": "keep", "sensitive": True}
    models: dict[str, Any] = {"k": 5, "max_suppression": 0.01, **(extra_models or {})}
    return {"name": "adult", "version": 1, "dataset": "adult", "columns": columns, "models": models}


def write_policy(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path
