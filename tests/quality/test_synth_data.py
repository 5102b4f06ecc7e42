"""The synthetic network's data (pmhub.synth) against every check.

Generated data passes every plausibility and conformance-of-dates check and nothing errors.
What still fails are gaps of the shipped vocabulary subset and of the generator, listed
here one by one with the reason, so that the list shrinks as they are mended (a mended gap
makes this test fail until it leaves the list)."""

from __future__ import annotations

from pathlib import Path

from pmhub.cdm import schema
from pmhub.quality import service
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry

KNOWN_GAPS = {
    # three local procedure codes (gastroscopy, gastrectomy, thyroidectomy) have no concept
    # in the shipped subset: 3 of 20 distinct codes, above the 10 % threshold (as DQD's)
    "source_value_unmapped/procedure_occurrence.procedure_concept_id",
}


def test_generated_network_fails_only_the_known_vocabulary_gaps(tmp_path: Path):
    from pmhub.synth import refdata
    from pmhub.synth.load import load_sites

    first = refdata.sites()[0].name
    site = SiteRegistry(load_settings()).add(first, f"duckdb:///{tmp_path / 'synth.duckdb'}")
    with site.connect() as backend:
        schema.init_cdm(backend, source_name=first, abbreviation=first, holder=first)
        load_sites({first: backend}, patients=300)
    run = service.run_quality(first)
    failed = {c["id"] for c in run.failed}
    assert [c["id"] for c in run.document["checks"] if c["status"] == "error"] == []
    assert {c["category"] for c in run.failed} <= {"completeness", "conformance"}
    assert failed == KNOWN_GAPS
