"""Run a definition across the network: each site computes its aggregate, the hub combines.

Here the sites are local CDWs, visited in turn; the boundary is the same as across
hospitals: :func:`pmhub.cohorts.federated.site_aggregate` runs inside the site and only
its JSON-serialisable :class:`SiteAggregate` travels to :func:`combine`.
"""

from __future__ import annotations

from pmhub.cohorts import benchdata, library
from pmhub.cohorts.definition import Definition
from pmhub.cohorts.errors import AggregateError
from pmhub.cohorts.federated import Combined, SiteAggregate, combine, site_aggregate
from pmhub.settings import Settings
from pmhub.sites import SiteRegistry


def site_aggregates(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> list[SiteAggregate]:
    sites = registry.list()
    if not sites:
        raise AggregateError(
            "no sites are registered", hint="Add sites with `pmhub sites add NAME` or `make demo`."
        )
    aggregates = []
    for site in sites:
        with site.connect() as backend:
            aggregate = site_aggregate(
                site.name, backend, definition, settings.small_cell_threshold, outcome
            )
        # what crosses the boundary is the JSON form, nothing else
        aggregates.append(SiteAggregate.model_validate_json(aggregate.model_dump_json()))
    return aggregates


def run_network(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> Combined:
    return combine(site_aggregates(definition, outcome, registry, settings))


def populate_empty(registry: SiteRegistry, persons: dict[str, int], seed: int) -> dict[str, int]:
    """Give each listed site whose CDW holds no person a generated population (demo data,
    until the synthetic-data layer provides realistic patients); return who got how many."""
    loaded = {}
    for number, site in enumerate(registry.list()):
        if site.name not in persons:
            continue
        with site.connect() as backend:
            if backend.count("person") == 0:
                benchdata.load(backend, persons[site.name], seed + number)
                loaded[site.name] = persons[site.name]
    return loaded


DEMO_STUDIES = (("type2_diabetes", None), ("atrial_fibrillation", "stroke"))


def library_overview(registry: SiteRegistry, settings: Settings) -> list[tuple[str, Combined]]:
    """Example studies run across the network; what the hub sees of each."""
    return [
        (
            library.example(name).name,
            run_network(
                library.example(name),
                library.example(outcome) if outcome else None,
                registry,
                settings,
            ),
        )
        for name, outcome in DEMO_STUDIES
    ]
