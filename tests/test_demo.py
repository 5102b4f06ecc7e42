"""`make demo`'s main job builds the three-site network, and again without harm."""

from pathlib import Path

from pmhub import demo
from pmhub.cdm import schema
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
    assert "pmhub demo network" in capsys.readouterr().out
