"""Fixtures and helpers shared by the workspace tests (and the hostile ones).

One small pool per test module: one worker of 256 MB and 64 MB of spill space, so that
the memory and time limits are reached in a second or two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from pmhub.safezone.sandbox import SandboxLimits, SandboxPool
from pmhub.safezone.workspace import Workspace, create_workspace

SMALL = SandboxLimits(workers=1, memory_limit_mb=256, max_temp_mb=64, threads=1)


def persons(n: int) -> pa.Table:
    return pa.table(
        {
            "person_pid": [f"{i * 2654435761 % 2**32:08x}" for i in range(n)],
            "sex": ["F" if i % 2 else "M" for i in range(n)],
            "birth_year": [1940 + i % 60 for i in range(n)],
        }
    )


def visits(n: int) -> pa.Table:
    return pa.table(
        {
            "person_pid": [f"{(i // 3) * 2654435761 % 2**32:08x}" for i in range(n)],
            "visit_type": ["outpatient", "inpatient", "emergency"] * (n // 3)
            + ["outpatient"] * (n % 3),
            "cost": [float(10 + i % 97) for i in range(n)],
        }
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the workspaces folder with its SHA-256 (the lock files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


def staged(root: Path) -> list[Path]:
    staging = root / ".staging"
    return sorted(staging.iterdir()) if staging.exists() else []


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxPool]:
    with SandboxPool(tmp_path_factory.mktemp("sandbox"), SMALL) as sandbox:
        yield sandbox


@pytest.fixture
def workspace(pmhub_home: Path) -> Workspace:
    ws = create_workspace("p1")
    ws.load_tables({"person": persons(200), "visit": visits(600)})
    return ws


def test_snapshot_sees_a_changed_byte(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    before = snapshot(tmp_path)
    (tmp_path / "a").write_bytes(b"y")
    assert snapshot(tmp_path) != before
