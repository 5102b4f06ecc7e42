"""Run a definition across the network: each site computes its aggregate, the hub combines.

Here the sites are local CDWs, visited in turn; the boundary is the same as across
hospitals: :func:`pmhub.cohorts.federated.site_aggregate` runs inside the site and only
its JSON-serialisable :class:`SiteAggregate` travels to :func:`combine`.
"""

from __future__ import annotations

from pmhub.cohorts import library, service
from pmhub.cohorts.definition import Definition
from pmhub.cohorts.errors import AggregateError
from pmhub.cohorts.federated import (
    Combined,
    Contribution,
    SiteAggregate,
    combine,
    site_result,
)
from pmhub.settings import Settings
from pmhub.sites import SiteRegistry


def site_aggregates(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> list[SiteAggregate]:
    return [a for a, _ in site_results(definition, outcome, registry, settings)]


def site_results(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> list[tuple[SiteAggregate, Contribution]]:
    """Each site's suppressed aggregate and exact contribution to pooled figures."""
    sites = registry.list()
    if not sites:
        raise AggregateError(
            "no sites are registered", hint="Add sites with `pmhub sites add NAME` or `make demo`."
        )
    results = []
    for site in sites:
        with service.open_engine(site) as engine:
            aggregate, contribution = site_result(
                site.name, engine, definition, settings.small_cell_threshold, outcome
            )
        # what crosses the boundary is the JSON form, nothing else
        results.append(
            (
                SiteAggregate.model_validate_json(aggregate.model_dump_json()),
                Contribution.model_validate_json(contribution.model_dump_json()),
            )
        )
    return results


def run_network(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> Combined:
    results = site_results(definition, outcome, registry, settings)
    return combine([a for a, _ in results], [c for _, c in results])


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
