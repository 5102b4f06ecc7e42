"""Errors of federated learning (exit codes 7-9; 3-6 are prediction's)."""

from __future__ import annotations

from pmhub.errors import PmhubError


class FederationError(PmhubError):
    """A federated run that cannot start or finish: ports, processes, settings."""

    exit_code = 7
    hint = "Run again with --debug; each site's log is in the run's folder."


class SiteUpdateError(FederationError):
    """A site's reply the hub refuses: malformed, of the wrong shape, or not finite."""

    exit_code = 8
    hint = "The site is left out of the round; check its data and its pmhub version."


class NotEnoughSitesError(FederationError):
    """Fewer sites than a round needs answered (dropped out, unreachable or refused)."""

    exit_code = 9
    hint = "Check that every site's process runs and reaches the hub; see the run's report."
    http_status = 503
