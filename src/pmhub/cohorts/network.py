"""Run a definition across the network: each site computes its aggregate, the hub combines.

Here the sites are local CDWs, visited in turn; the boundary is the same as across
hospitals: :func:`pmhub.cohorts.federated.site_aggregate` runs inside the site and only
its JSON-serialisable :class:`SiteAggregate` travels to :func:`combine`.
"""

from __future__ import annotations

from pmhub.cohorts import library, service
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
        with service.open_engine(site) as engine:
            aggregate = site_aggregate(
                site.name, engine, definition, settings.small_cell_threshold, outcome
            )
        # what crosses the boundary is the JSON form, nothing else
        aggregates.append(SiteAggregate.model_validate_json(aggregate.model_dump_json()))
    return aggregates


def run_network(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> Combined:
    return combine(site_aggregates(definition, outcome, registry, settings))


DEMO_STUDIES = (
    ("type2_diabetes", None),
    ("metformin_new_users", None),
    ("atrial_fibrillation", "stroke"),
)


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
