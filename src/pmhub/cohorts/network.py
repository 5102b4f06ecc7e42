"""Run a definition across the network: each site computes its aggregate, the hub combines.

Here the sites are local CDWs, visited in turn; the boundary is the same as across
hospitals: :func:`pmhub.cohorts.federated.site_aggregate` runs inside the site and only
its JSON-serialisable :class:`SiteAggregate` travels to :func:`combine`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmhub.cohorts import library, service
from pmhub.cohorts.definition import Definition
from pmhub.cohorts.errors import AggregateError, PartialNetworkError
from pmhub.cohorts.federated import (
    Combined,
    Contribution,
    SiteAggregate,
    combine,
    site_result,
)
from pmhub.errors import PmhubError
from pmhub.settings import Settings
from pmhub.sites import Site, SiteRegistry

Result = tuple[SiteAggregate, Contribution]


@dataclass(frozen=True)
class SiteFailure:
    """A site that gave no aggregate, and why (its own typed error)."""

    site: str
    error: PmhubError

    def describe(self) -> str:
        return f"{self.site} ({self.error.message.splitlines()[0]})"


@dataclass(frozen=True)
class Gathered:
    results: list[Result]
    failures: list[SiteFailure]


@dataclass(frozen=True)
class NetworkRun:
    """What the hub combined of the sites that answered, and the sites that did not."""

    combined: Combined
    failures: list[SiteFailure]

    def partial(self) -> PartialNetworkError | None:
        """The error to end with when sites are missing (None when all answered)."""
        if not self.failures:
            return None
        total = len(self.combined.sites) + len(self.failures)
        return PartialNetworkError(
            f"{len(self.failures)} of {total} sites did not answer: "
            + "; ".join(f.describe() for f in self.failures)
            + f". The figures are of {', '.join(self.combined.sites)} only."
        )

    def complete(self) -> Combined:
        """The combined figures, or PartialNetworkError if a site did not answer."""
        error = self.partial()
        if error is not None:
            raise error
        return self.combined

    def place(self) -> str:
        """Where the figures come from, for a report's heading."""
        reached = ", ".join(self.combined.sites)
        missing = ", ".join(f.site for f in self.failures)
        return f"the network ({reached})" + (f"; not reached: {missing}" if missing else "")


def _result_at(
    site: Site,
    definition: Definition,
    outcome: Definition | None,
    settings: Settings,
    replace: bool,
) -> Result:
    with service.open_engine(site) as engine:
        aggregate, contribution = site_result(
            site.name,
            engine,
            definition,
            settings.small_cell_threshold,
            outcome,
            replace=replace,
        )
    # what crosses the boundary is the JSON form, nothing else
    return (
        SiteAggregate.model_validate_json(aggregate.model_dump_json()),
        Contribution.model_validate_json(contribution.model_dump_json()),
    )


def gather(
    definition: Definition,
    outcome: Definition | None,
    registry: SiteRegistry,
    settings: Settings,
    *,
    replace: bool = False,
) -> Gathered:
    """Each site's suppressed aggregate and exact contribution to pooled figures; a site
    that cannot be reached or refuses (its CDW gone, its server down, the definition's id
    holding other rows there) is set aside with its error, and the others go on."""
    sites = registry.list()
    if not sites:
        raise AggregateError(
            "no sites are registered", hint="Add sites with `pmhub sites add NAME` or `make demo`."
        )
    results, failures = [], []
    for site in sites:
        try:
            results.append(_result_at(site, definition, outcome, settings, replace))
        except PmhubError as error:
            failures.append(SiteFailure(site.name, error))
    if not results:
        raise _none_answered(failures)
    return Gathered(results, failures)


def _none_answered(failures: list[SiteFailure]) -> PmhubError:
    """No site answered: one cause everywhere keeps its own error (and exit code)."""
    reasons = "; ".join(f.describe() for f in failures)
    if len({type(f.error) for f in failures}) == 1:
        first = failures[0].error
        first.message = f"no site answered: {reasons}"
        first.args = (first.message,)
        return first
    return PartialNetworkError(f"no site answered: {reasons}")


def site_results(
    definition: Definition,
    outcome: Definition | None,
    registry: SiteRegistry,
    settings: Settings,
    *,
    replace: bool = False,
) -> list[Result]:
    """Every site's aggregate and contribution; PartialNetworkError if a site did not answer."""
    gathered = gather(definition, outcome, registry, settings, replace=replace)
    if gathered.failures:
        _run(gathered).complete()
    return gathered.results


def site_aggregates(
    definition: Definition, outcome: Definition | None, registry: SiteRegistry, settings: Settings
) -> list[SiteAggregate]:
    return [a for a, _ in site_results(definition, outcome, registry, settings)]


def _run(gathered: Gathered) -> NetworkRun:
    results = gathered.results
    return NetworkRun(combine([a for a, _ in results], [c for _, c in results]), gathered.failures)


def run_across(
    definition: Definition,
    outcome: Definition | None,
    registry: SiteRegistry,
    settings: Settings,
    *,
    replace: bool = False,
) -> NetworkRun:
    """The definition across every site: what the hub combined, and who did not answer."""
    return _run(gather(definition, outcome, registry, settings, replace=replace))


def run_network(
    definition: Definition,
    outcome: Definition | None,
    registry: SiteRegistry,
    settings: Settings,
    *,
    replace: bool = False,
) -> Combined:
    """What the hub combined of every site; PartialNetworkError if a site did not answer."""
    return run_across(definition, outcome, registry, settings, replace=replace).complete()


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
