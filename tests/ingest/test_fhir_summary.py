"""A FHIR export is a bundle per patient: the CLI sums the files in one row (showing those
with quarantined rows) and gives the rows per resource type, instead of a row per bundle."""

from __future__ import annotations

from pathlib import Path

from tests.clirun import run_cli


def test_fhir_ingest_summarises_by_resource_type(pmhub_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    code, _, err = run_cli(
        "synth",
        "--sites",
        "1",
        "--patients",
        "40",
        "--years",
        "2",
        "--format",
        "fhir",
        "--out",
        str(out),
    )
    assert code == 0, err
    bundles = sorted((out / "chuncheon_univ" / "fhir").glob("*.json"))
    assert len(bundles) > 20
    assert run_cli("sites", "add", "chuncheon_univ")[0] == 0
    assert run_cli("cdm", "init", "--site", "chuncheon_univ")[0] == 0
    code, printed, err = run_cli(
        "ingest",
        str(out / "chuncheon_univ" / "fhir"),
        "--site",
        "chuncheon_univ",
        "--format",
        "fhir",
        "--allow-quarantine",
    )
    assert code == 0, err
    assert f"total ({len(bundles):,} files)" in printed
    assert sum(1 for b in bundles if b.name in printed) <= 20  # no row per bundle
    assert "FHIR resources" in printed
    for kind in ("patients", "encounters"):
        assert kind in printed
