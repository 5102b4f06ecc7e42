"""Disclosure control in one place: every aggregate that leaves a site or is shown.

- :mod:`cells`: a released count (a value, or hidden with the reason), rounding, the note
  every report prints;
- :mod:`tables`: primary and complementary suppression of tables with margins and
  strata, checked by :mod:`audit` (the feasible interval of every hidden cell);
- :mod:`km`: Kaplan-Meier curves and numbers at risk from rounded counts, truncated
  where fewer than the threshold remain at risk (OpenSAFELY's practice);
- :mod:`pooling`: figures pooled from the sites' exact contributions, released only
  after suppression, and the reason when a figure cannot be pooled.
"""

from pmhub.disclosure.cells import MARK, Count, Why, hidden, note, primary, round_to, shown, small
from pmhub.disclosure.tables import Line, Protected, protect

__all__ = [
    "MARK",
    "Count",
    "Line",
    "Protected",
    "Why",
    "hidden",
    "note",
    "primary",
    "protect",
    "round_to",
    "shown",
    "small",
]
