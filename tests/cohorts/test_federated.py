"""Federated cohorts: sites return suppressed aggregates only; the hub combines them."""

from __future__ import annotations

import pytest

from pmhub.cdm import schema
from pmhub.cohorts import benchdata, library, network
from pmhub.cohorts.errors import AggregateError
from pmhub.cohorts.federated import SiteAggregate, combine, suppress
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry

SIZES = {"north": (3000, 1), "south": (1500, 2), "tiny": (200, 3)}


@pytest.fixture
def sites() -> SiteRegistry:
    registry = SiteRegistry(load_settings())
    for name, (persons, seed) in SIZES.items():
        with registry.add(name).connect() as backend:
            schema.init_cdm(backend, source_name=name, abbreviation=name, holder=name)
            benchdata.load(backend, persons, seed)
    return registry


def test_sites_share_only_suppressed_aggregates_and_the_hub_pools_exact_counts(
    sites: SiteRegistry,
) -> None:
    settings = load_settings()
    af, stroke = library.example("atrial_fibrillation"), library.example("stroke")
    results = network.site_results(af, stroke, sites, settings)
    aggregates = [a for a, _ in results]
    contributions = [c for _, c in results]
    by_site = {a.site: a for a in aggregates}
    assert by_site["tiny"].persons is None  # 200 persons: a few AF cases, fewer than 10
    for aggregate in aggregates:
        counts = [aggregate.persons, *aggregate.by_sex.values(), *aggregate.by_age.values()]
        assert all(c is None or c == 0 or c >= 10 for c in counts)
        for rate in aggregate.rates:
            assert rate.events is None or rate.events == 0 or rate.events >= 10
        if aggregate.life_table:
            table = aggregate.life_table
            assert all(n >= 10 for n in table.at_risk)
            assert all(c == 0 or c >= 10 for c in table.events + table.censored)
        steps = [s.step for s in aggregate.attrition]
        assert steps == ["entry events", "adult", "no stroke before"]
        cells = [c for s in aggregate.attrition for c in (s.persons, s.events)]
        assert all(c is None or c == 0 or c >= 10 for c in cells)
    combined = combine(aggregates, contributions)
    exact = sum(c.persons for c in contributions)
    assert combined.persons.value == exact  # tiny's few persons count, not as 0
    # tiny is hidden, and so is a partner: the total less the shown sites is not tiny's
    shown = [c for c in combined.persons_by_site.values() if not c.hidden]
    assert combined.persons_by_site["tiny"].hidden
    assert len(shown) <= len(contributions) - 2
    female = sum(c.by_sex["female"] for c in contributions)
    assert combined.by_sex["female"].value in (female, None)
    pooled = combined.pooled_rate
    assert pooled is not None
    events = sum(r[3] for c in contributions for r in c.strata if r[0] == "overall")
    person_years = sum(r[4] for c in contributions for r in c.strata if r[0] == "overall")
    assert pooled.person_years == pytest.approx(person_years)
    if events >= 10:
        assert pooled.events.value == events
        assert pooled.rate == pytest.approx(events / person_years * 1000)
    else:
        assert pooled.events.hidden
        assert pooled.reason == "not computable: fewer than 10 events across the sites"
    assert combined.survival
    assert all(0.0 <= s <= 1.0 for s in combined.survival)
    assert combined.survival == sorted(combined.survival, reverse=True)
    assert combined.life_table is not None
    assert all(n >= 10 for n in combined.life_table.at_risk)
    entry, *_, last = combined.attrition
    assert entry[1].value == sum(c.attrition[0][1] for c in contributions)
    assert last[1].value is None or 0 < last[1].value <= (entry[1].value or 0)


def test_without_every_sites_exact_counts_nothing_is_pooled(sites: SiteRegistry) -> None:
    results = network.site_results(library.example("type2_diabetes"), None, sites, load_settings())
    aggregates = [a for a, _ in results]
    partial = combine(aggregates, [c for _, c in results if c.site != "south"])
    assert partial.persons.hidden
    assert partial.not_pooled == "not computable: no exact contribution from south"
    assert partial.pooled_rate is None
    assert combine(aggregates).not_pooled is not None


def test_the_threshold_is_configurable(
    sites: SiteRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMHUB_SMALL_CELL_THRESHOLD", "1000")
    aggregates = network.site_aggregates(
        library.example("type2_diabetes"), None, sites, load_settings()
    )
    assert [a.threshold for a in aggregates] == [1000, 1000, 1000]
    assert all(a.persons is None or a.persons >= 1000 for a in aggregates)


def _aggregate(**changes: object) -> SiteAggregate:
    base = SiteAggregate(
        site="a",
        definition_id=1,
        fingerprint="f",
        threshold=10,
        persons=20,
        entries=20,
        by_sex={"female": 10, "male": 10},
        by_age={"40-64": 20},
    )
    return base.model_copy(update=changes)


def test_the_hub_refuses_aggregates_that_do_not_belong_together() -> None:
    with pytest.raises(AggregateError, match="fingerprint"):
        combine([_aggregate(), _aggregate(site="b", fingerprint="other")])
    with pytest.raises(AggregateError, match="threshold"):
        combine([_aggregate(), _aggregate(site="b", threshold=5)])
    with pytest.raises(AggregateError, match="twice"):
        combine([_aggregate(), _aggregate()])
    with pytest.raises(AggregateError):
        combine([])


def test_aggregates_are_strict_json() -> None:
    text = _aggregate().model_dump_json()
    assert SiteAggregate.model_validate_json(text) == _aggregate()
    with pytest.raises(ValueError, match="extra"):
        SiteAggregate.model_validate_json(text.replace('"site"', '"rows": [1], "site"'))


@pytest.mark.parametrize(("count", "expected"), [(0, 0), (1, None), (9, None), (10, 10)])
def test_suppression(count: int, expected: int | None) -> None:
    assert suppress(count, 10) == expected


def test_no_sites_is_an_error() -> None:
    with pytest.raises(AggregateError, match="no sites"):
        network.run_network(
            library.example("stroke"), None, SiteRegistry(load_settings()), load_settings()
        )
