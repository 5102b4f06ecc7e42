"""The run index under concurrency: two real processes storing runs at the same time into
one home each keep every entry (without the lock, one process's read-modify-write of the
index loses the other's entries), and the index stays valid JSON throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from pmhub.quality import store

RUNS_PER_PROCESS = 40

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pmhub.quality import store

    home, site, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(runs):
        store.save(home, {
            "format": store.FORMAT,
            "site": site,
            "run_id": f"20261122T{i:06d}000000Z",
            "finished_at": "2026-11-22T00:00:00+00:00",
            "summary": {},
            "padding": "x" * 20000,
        })
    """
)


def _writers(home: Path, sites: list[str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home), site, str(RUNS_PER_PROCESS)],
            stderr=subprocess.PIPE,
        )
        for site in sites
    ]


def test_two_processes_storing_runs_lose_no_index_entry(tmp_path: Path):
    sites = ["alpha", "beta"]
    procs = _writers(tmp_path, sites)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    index = store.load_index(tmp_path)
    for site in sites:
        ids = sorted(r["run_id"] for r in index if r["site"] == site)
        assert ids == [f"20261122T{i:06d}000000Z" for i in range(RUNS_PER_PROCESS)]
        assert len(list((tmp_path / "quality" / site).glob("*.json"))) == RUNS_PER_PROCESS
    assert len(index) == len(sites) * RUNS_PER_PROCESS
    leftovers = [p.name for p in (tmp_path / "quality").rglob("*.tmp")]
    assert leftovers == []
    json.loads((tmp_path / "quality" / store.INDEX).read_text())


def test_storing_a_run_twice_keeps_one_index_entry(tmp_path: Path):
    doc = {
        "format": store.FORMAT,
        "site": "alpha",
        "run_id": "20261122T000000000000Z",
        "finished_at": "2026-11-22T00:00:00+00:00",
        "summary": {},
    }
    store.save(tmp_path, doc)
    store.save(tmp_path, doc)
    assert [r["run_id"] for r in store.load_index(tmp_path)] == [doc["run_id"]]


def test_a_held_lock_times_out_with_a_clear_error(tmp_path: Path):
    import pytest

    from pmhub.quality.errors import QualityOutputError

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from pmhub.quality import store\n"
            "with store.index_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(30)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(QualityOutputError, match="held"), store.index_lock(tmp_path, 0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
    with store.index_lock(tmp_path, 1.0):  # the kernel released the dead holder's lock
        pass
