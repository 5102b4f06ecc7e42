"""The synthetic network's data (pmhub.synth) against every check.

Clean generated data fails no check and nothing errors: the issue's "on clean generated
data no check fails". Every site, since each codes differently (KCD-7 only, lab
units). Planted defects are caught in test_checks_spec.py (data in cdw.py)."""

from __future__ import annotations

from pathlib import Path

from pmhub.cdm import schema
from pmhub.quality import service
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry


def test_generated_network_fails_no_check(tmp_path: Path):
    from pmhub.synth import refdata
    from pmhub.synth.load import load_sites

    registry = SiteRegistry(load_settings())
    names = [s.name for s in refdata.sites()[:3]]
    backends = {}
    for name in names:
        site = registry.add(name, f"duckdb:///{tmp_path / name}.duckdb")
        backend = site.connect()
        schema.init_cdm(backend, source_name=name, abbreviation=name[:25], holder=name)
        backends[name] = backend
    try:
        load_sites(backends, patients=600)
    finally:
        for backend in backends.values():
            backend.close()
    for name in names:
        run = service.run_quality(name)
        assert [c["id"] for c in run.document["checks"] if c["status"] == "error"] == []
        assert {c["id"] for c in run.failed} == set(), name
        assert len(run.document["checks"]) > 1000  # every check ran
