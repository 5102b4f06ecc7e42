"""`make demo`'s main job builds the three-site network, and again without harm."""

from pathlib import Path

from pmhub import demo
from pmhub.cdm import schema
from pmhub.platform.core import open_platform
from pmhub.safezone import demo as safezone_demo
from pmhub.safezone import outputs
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry


def test_demo_builds_three_initialised_sites_idempotently(pmhub_home: Path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_PATIENTS", 2_000)  # the network's size is not the point here
    assert demo.main(["--home", str(pmhub_home)]) == 0
    assert demo.main(["--home", str(pmhub_home)]) == 0
    sites = SiteRegistry(load_settings()).list()
    assert sorted(s.name for s in sites) == sorted(d.name for d in demo.NETWORK)
    for site in sites:
        with site.connect() as backend:
            assert schema.verify(backend) == []
            assert backend.count("concept") > 2_300
            assert backend.count("cdm_source") == 1
    out = capsys.readouterr().out
    assert "pmhub demo network" in out
    # each analysis names its outcome, the person records are explained, pmhub is findable
    assert "Stroke" in out
    assert "outcome" in out
    assert "for 2,000 people" in out
    assert "counted once at each" in out
    assert "source .venv/bin/activate" in out
    # the safe zone: a user of every role with a password, and one finished project
    assert "demo users (safe zone)" in out
    assert "pmhub-demo-checker.oh" in out
    assert "already finished" in out  # the second run found the first run's project
    pf = open_platform(load_settings())
    try:
        park = safezone_demo.principal(pf, "park.member")
        released = [o for o in outputs.list_outputs(pf, park) if o.state == "released"]
        assert [o.file for o in released] == ["t2dm-by-sex.csv"]
        _, data = outputs.download_output(pf, park, released[0].id)
        assert data.splitlines()[0] == b'"gender_concept_id","n"'
    finally:
        pf.close()
