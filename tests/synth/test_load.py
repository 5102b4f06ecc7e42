"""Loading the network straight into site CDWs (DuckDB and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.synth import load, omop
from pmhub.synth.errors import InvalidSynthArgumentError, SynthLoadError
from pmhub.synth.service import generate

from .conftest import read_csv

ARGS: dict[str, Any] = {"patients": 150, "years": 3, "seed": 21}


def test_one_site_load_matches_the_generated_files(cdm_backend: Backend, tmp_path: Path) -> None:
    result = load.load_sites({"chuncheon_univ": cdm_backend}, **ARGS)
    files = generate(tmp_path / "files", sites=1, workers=1, **ARGS)
    site = files.folder / "chuncheon_univ"
    for table in (
        "person",
        "visit_occurrence",
        "condition_occurrence",
        "measurement",
        "drug_exposure",
        "death",
    ):
        expected = len(read_csv(site / f"{table}.csv"))
        assert cdm_backend.count(table) == expected == result.loaded["chuncheon_univ"][table], table
    assert cdm_backend.count("provider") == len(read_csv(site / "provider.csv"))
    assert schema.verify(cdm_backend) == []
    orphans = cdm_backend.fetchall(
        "SELECT count(*) FROM measurement m LEFT JOIN visit_occurrence v "
        "ON m.visit_occurrence_id = v.visit_occurrence_id WHERE v.visit_occurrence_id IS NULL"
    )
    assert orphans[0][0] == 0


def test_loading_again_is_skipped_and_another_seed_replaces(cdm_backend: Backend) -> None:
    load.load_sites({"chuncheon_univ": cdm_backend}, **ARGS)
    persons = cdm_backend.count("person")
    again = load.load_sites({"chuncheon_univ": cdm_backend}, **ARGS)
    assert again.skipped == ["chuncheon_univ"]
    assert not again.loaded
    assert cdm_backend.count("person") == persons
    other = load.load_sites({"chuncheon_univ": cdm_backend}, **{**ARGS, "seed": 22})
    assert other.replaced == ["chuncheon_univ"]
    assert cdm_backend.count("person") == other.loaded["chuncheon_univ"]["person"]
    markers = cdm_backend.fetchall("SELECT count(*) FROM metadata WHERE name = 'pmhub.synth'")
    assert markers[0][0] == 1


def test_foreign_data_is_never_overwritten(cdm_backend: Backend) -> None:
    cdm_backend.execute(
        "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, "
        "ethnicity_concept_id) VALUES (1, 8507, 1950, 0, 0)"
    )
    with pytest.raises(SynthLoadError, match="not made by pmhub synth"):
        load.load_sites({"chuncheon_univ": cdm_backend}, **ARGS)
    assert cdm_backend.count("person") == 1
    assert cdm_backend.count("visit_occurrence") == 0


def test_a_site_without_a_cdm_is_refused(empty_backend: Backend) -> None:
    with pytest.raises(SynthLoadError, match="no OMOP CDM") as caught:
        load.load_sites({"chuncheon_univ": empty_backend}, **ARGS)
    assert "pmhub cdm init" in caught.value.hint


def test_a_failure_writes_nothing_to_any_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backends = {}
    for name in ("chuncheon_univ", "gangneung_general"):
        backend = DuckDBBackend(tmp_path / f"{name}.duckdb")
        schema.init_cdm(backend, source_name=name, abbreviation=name, holder=name)
        backends[name] = backend
    real = omop.SiteTables.build
    calls = {"n": 0}

    def flaky(self: Any, name: str) -> Any:
        calls["n"] += 1
        if calls["n"] > 15:
            raise RuntimeError("power cut")
        return real(self, name)

    monkeypatch.setattr(omop.SiteTables, "build", flaky)
    with pytest.raises(RuntimeError):
        load.load_sites(backends, **ARGS)
    for backend in backends.values():
        assert backend.count("person") == 0
        assert backend.count("provider") == 0
        assert backend.count("metadata") == 0
        backend.close()


@pytest.mark.parametrize(
    "names", [["gangneung_general"], ["chuncheon_univ", "jeongseon_county"], []]
)
def test_sites_must_follow_the_catalogue(tmp_path: Path, names: list[str]) -> None:
    backends = {n: DuckDBBackend(tmp_path / f"{n}.duckdb") for n in names}
    with pytest.raises(InvalidSynthArgumentError):
        load.load_sites(backends, **ARGS)
    for backend in backends.values():
        backend.close()


def test_ground_truth_and_gold_spans_go_next_to_the_cdws(tmp_path: Path) -> None:
    backend = DuckDBBackend(tmp_path / "univ.duckdb")
    schema.init_cdm(backend, source_name="u", abbreviation="u", holder="u")
    truth_dir = tmp_path / "truth"
    load.load_sites({"chuncheon_univ": backend}, truth_dir=truth_dir, **ARGS)
    linkage = read_csv(truth_dir / "ground_truth" / "linkage.csv")
    loaded = {str(r[0]) for r in backend.fetchall("SELECT person_id FROM person")}
    assert {r["person_id"] for r in linkage} == loaded
    notes = {
        r["note_id"]: r["note_text"] for r in read_csv(truth_dir / "chuncheon_univ" / "notes.csv")
    }
    assert len(notes) == backend.count("note") > 0
    for span in read_csv(truth_dir / "chuncheon_univ" / "note_spans.csv"):
        assert notes[span["note_id"]][int(span["start"]) : int(span["end"])] == span["text"]
    assert (truth_dir / "ground_truth" / "summary.json").is_file()
    backend.close()


@pytest.mark.parametrize("where", ["foreign", "file", "root"])
def test_the_ground_truth_folder_never_replaces_other_data(tmp_path: Path, where: str) -> None:
    backend = DuckDBBackend(tmp_path / "univ.duckdb")
    schema.init_cdm(backend, source_name="u", abbreviation="u", holder="u")
    folder = {"foreign": tmp_path / "mine", "file": tmp_path / "file", "root": Path("/")}[where]
    if where == "foreign":
        folder.mkdir()
        (folder / "thesis.txt").write_text("keep")
    if where == "file":
        folder.write_text("keep")
    with pytest.raises(InvalidSynthArgumentError):
        load.load_sites({"chuncheon_univ": backend}, truth_dir=folder, **ARGS)
    assert backend.count("person") == 0
    if where == "foreign":
        assert (folder / "thesis.txt").read_text() == "keep"
    backend.close()


def test_loading_in_worker_processes_writes_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are built in worker processes when there are several; what lands in the CDW
    and beside it does not depend on that."""
    from pmhub.cdm.backends import connect
    from pmhub.synth import config

    monkeypatch.setattr(config, "CHUNK_SIZE", 60)  # 150 people: three chunks
    seen = []
    for workers in (1, 2):
        monkeypatch.setattr(load, "default_workers", lambda w=workers: w)
        backend = connect(f"duckdb:///{tmp_path / f'w{workers}.duckdb'}")
        try:
            schema.init_cdm(backend, source_name="t", abbreviation="t", holder="t")
            truth_dir = tmp_path / f"truth{workers}"
            load.load_sites({"chuncheon_univ": backend}, truth_dir=truth_dir, **ARGS)
            rows = {
                t: backend.fetchall(f"SELECT * FROM {t} ORDER BY 1")
                for t in ("person", "visit_occurrence", "measurement", "note")
            }
            files = {
                p.relative_to(truth_dir): p.read_bytes()
                for p in sorted(truth_dir.rglob("*"))
                if p.is_file()
            }
        finally:
            backend.close()
        seen.append((rows, files))
    assert seen[0] == seen[1]
    assert len(seen[0][0]["person"]) > 100
