"""Pooling without bias, on synthetic networks with known truth.

- Three hospitals (10,000 people): the pooled incidence of stroke after type 2 diabetes
  is the exact rate of every site's rows, although every site's own count is too small
  to show (the hub used to drop such sites, and pooled nothing).
- One university hospital (30,000 people, no one's records split across hospitals): the
  generator's true rate of ischaemic stroke in atrial fibrillation lies in the pooled
  95 % interval. (Across several hospitals the network sees fewer strokes than happen:
  a stroke treated at the university hospital is not in the record of the hospital
  that follows the patient's atrial fibrillation; that is linkage's work, not pooling's.)
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pandas as pd
import pytest

from pmhub.cdm import schema
from pmhub.cohorts import definition, library, network, outcomes, service
from pmhub.cohorts.federated import combine
from pmhub.cohorts.incidence import DAYS_PER_YEAR
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry
from pmhub.synth.load import load_sites

DATA = Path(__file__).parent / "data"
# The generator's af_stroke_5y task: atrial fibrillation on 2021-01-01, no stroke before,
# followed five years for ischaemic stroke; its nearest cohort definition is an AF record
# in the second half of 2020, followed 1,826 days.
AF_2020, ISCHAEMIC_STROKE = DATA / "af_2020.yaml", DATA / "ischaemic_stroke.yaml"


def build(home: Path, sites: tuple[str, ...], patients: int, seed: int) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PMHUB_HOME", str(home))
        registry = SiteRegistry(load_settings())
        backends = {}
        for name in sites:
            backends[name] = backend = registry.add(name).connect()
            schema.init_cdm(backend, source_name=name, abbreviation=name, holder=name)
        try:
            load_sites(backends, patients=patients, years=10, seed=seed, truth_dir=home / "truth")
        finally:
            for backend in backends.values():
                backend.close()
    return home


@pytest.fixture(scope="module")
def three_sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sites = ("chuncheon_univ", "gangneung_general", "jeongseon_county")
    return build(tmp_path_factory.mktemp("three"), sites, 10_000, 20261122)  # the demo's


@pytest.fixture(scope="module")
def one_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("one"), ("chuncheon_univ",), 30_000, 7)


def registry_at(home: Path, monkeypatch: pytest.MonkeyPatch) -> SiteRegistry:
    monkeypatch.setenv("PMHUB_HOME", str(home))
    return SiteRegistry(load_settings())


def all_rows(
    registry: SiteRegistry, target: definition.Definition, outcome: definition.Definition
) -> pd.DataFrame:
    """Every site's time-at-risk rows, read directly (what no hub ever sees)."""
    frames = []
    for site in registry.list():
        with service.open_engine(site) as engine:
            service.generate(target, engine)
            service.generate(outcome, engine)
            frames.append(outcomes.time_at_risk(engine, target.id, outcome.id))
    return pd.concat(frames, ignore_index=True)


def test_the_pooled_rate_is_the_exact_rate_of_all_sites_rows(
    three_sites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_at(three_sites, monkeypatch)
    target, outcome = library.example("type2_diabetes"), library.example("stroke")
    results = network.site_results(target, outcome, registry, load_settings())
    aggregates = [a for a, _ in results]
    overall = [r for a in aggregates for r in a.rates if r.stratum == "overall"]
    assert all(r.events is None for r in overall)  # no site may show its own count
    pooled = combine(aggregates, [c for _, c in results]).pooled_rate
    assert pooled is not None
    rows = all_rows(registry, target, outcome)
    events, person_years = int(rows["event"].sum()), float(rows["days"].sum()) / DAYS_PER_YEAR
    assert events >= 10
    assert pooled.events.value == events
    assert pooled.persons.value == len(rows)
    assert pooled.person_years == pytest.approx(person_years, rel=1e-9)
    assert pooled.rate == pytest.approx(1000 * events / person_years, rel=1e-9)
    assert pooled.lower is not None
    assert pooled.upper is not None
    assert pooled.rate is not None
    assert pooled.lower < pooled.rate < pooled.upper


def test_the_generators_truth_lies_in_the_pooled_interval(
    one_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_at(one_site, monkeypatch)
    target, outcome = definition.load(AF_2020), definition.load(ISCHAEMIC_STROKE)
    pooled = network.run_network(target, outcome, registry, load_settings()).pooled_rate
    assert pooled is not None
    assert pooled.events.value is not None  # enough strokes to show
    assert pooled.lower is not None
    assert pooled.upper is not None
    with (one_site / "truth" / "ground_truth" / "task_af_stroke_5y.csv").open() as handle:
        task = list(csv.DictReader(handle))
    truth = 1000 * statistics.mean(float(r["true_annual_hazard"]) for r in task)
    assert pooled.lower <= truth <= pooled.upper, (pooled, truth)
