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


def test_sites_share_only_suppressed_aggregates_and_the_hub_sums_them(
    sites: SiteRegistry,
) -> None:
    settings = load_settings()
    af, stroke = library.example("atrial_fibrillation"), library.example("stroke")
    aggregates = network.site_aggregates(af, stroke, sites, settings)
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
    combined = combine(aggregates)
    assert combined.persons == sum(a.persons or 0 for a in aggregates)
    assert combined.persons_suppressed_at == ["tiny"]
    assert combined.by_sex["female"] == sum(a.by_sex["female"] or 0 for a in aggregates)
    assert combined.pooled_rate is not None
    usable = [r for a in aggregates for r in a.rates if r.stratum == "overall" and r.events]
    assert combined.pooled_rate.events == sum(r.events or 0 for r in usable)
    assert combined.survival
    assert all(0.0 <= s <= 1.0 for s in combined.survival)
    assert combined.survival == sorted(combined.survival, reverse=True)
    for aggregate in aggregates:
        steps = [s.step for s in aggregate.attrition]
        assert steps == ["entry events", "adult", "no stroke before"]
        cells = [c for s in aggregate.attrition for c in (s.persons, s.events)]
        assert all(c is None or c == 0 or c >= 10 for c in cells)
    assert by_site["tiny"].attrition[0].persons is None
    assert [s.persons for s in combined.attrition] == [
        sum(a.attrition[k].persons or 0 for a in aggregates) for k in range(3)
    ]
    entry, *_, last = combined.attrition
    assert entry.persons is not None
    assert last.persons is not None
    assert entry.persons >= last.persons > 0


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
