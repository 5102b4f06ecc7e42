"""When the service queues a site's extraction: once every requested site has decided,
never before (the lifecycle refuses an extraction while a site is undecided, so a job
started early failed and left the application waiting for ever)."""

from __future__ import annotations

from pmhub.platform.core import Platform
from pmhub.safezone import jobs
from pmhub.sites import SiteRegistry
from tests.api.safezone_world import drb_approved, people, step

SITES = ["chuncheon_univ", "gangneung_general", "jeongseon_county"]


def test_the_last_site_decision_queues_every_approved_site(platform: Platform) -> None:
    registry = SiteRegistry(platform.settings)
    for site in SITES:
        registry.add(site)
    people(platform, SITES)
    app_id = drb_approved(platform, SITES)

    step(platform, app_id, f"steward_{SITES[0]}", "site_approved", site=SITES[0])
    step(platform, app_id, f"steward_{SITES[1]}", "site_approved", site=SITES[1])
    assert jobs.list_jobs(platform) == []  # the third hospital has not decided

    last = SITES[2]
    view = step(platform, app_id, f"steward_{last}", "site_refused", site=last, reason="not ours")
    assert view.state.status.value == "sites_approved"
    queued = sorted((j.key, j.state) for j in jobs.list_jobs(platform))
    assert queued == [(f"extract/{app_id}/{s}", jobs.QUEUED) for s in SITES[:2]]
