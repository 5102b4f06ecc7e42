"""Same seed, same bytes — whatever the number of worker processes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pmhub.synth.config import CHUNK_SIZE
from pmhub.synth.service import SynthResult, generate

from .conftest import SMALL


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(omop_net: SynthResult, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", fmt="omop", workers=1, **SMALL)
    first, second = digest(omop_net.folder), digest(again.folder)
    assert first == second
    assert len(first) > 20


def test_another_seed_gives_another_network(omop_net: SynthResult, tmp_path: Path) -> None:
    other = generate(tmp_path / "other", fmt="omop", workers=1, **{**SMALL, "seed": 12})
    first, second = digest(omop_net.folder), digest(other.folder)
    changed = [name for name in first if first[name] != second.get(name)]
    assert "chuncheon_univ/person.csv" in changed
    assert "chuncheon_univ/measurement.csv" in changed


def test_worker_processes_do_not_change_the_output(tmp_path: Path) -> None:
    args: dict[str, Any] = {"sites": 2, "patients": CHUNK_SIZE + 300, "years": 1, "seed": 3}
    serial = generate(tmp_path / "serial", workers=1, **args)
    parallel = generate(tmp_path / "parallel", workers=2, **args)
    assert digest(serial.folder) == digest(parallel.folder)
