"""Cohort results as they may be shown: one set of rules for the terminal, the HTML
reports and what the hub combines (the counts themselves come suppressed from
:mod:`pmhub.disclosure`; this module only words them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pmhub.disclosure import Count, Line, protect

if TYPE_CHECKING:
    from pmhub.cohorts.characterize import Cell
    from pmhub.cohorts.federated import PooledRate
    from pmhub.cohorts.incidence import Rate
    from pmhub.disclosure.km import SafeCurve

NOT_SHOWN = "—"


def attrition_released(
    steps: list[tuple[str, int, int, int]], threshold: int
) -> list[tuple[str, Count, Count, Count]]:
    """Attrition (step, persons, events, persons meeting the rule alone) suppressed with
    what each rule removed: the drop from one step to the next is a count too, never
    shown, that the two steps would give back by subtraction."""
    counts = [(p, e, a) for _, p, e, a in steps]
    out: list[list[Count]] = [[], [], []]
    for column in range(3):
        values = {("step", k): c[column] for k, c in enumerate(counts)}
        lines: list[Line[tuple[str, int]]] = []
        never: list[tuple[str, int]] = []
        if column < 2:  # persons and events are nested; "meeting the rule alone" is not
            for k in range(1, len(steps)):
                removed = ("removed", k)
                values[removed] = counts[k - 1][column] - counts[k][column]
                never.append(removed)
                lines.append(Line(("step", k - 1), (("step", k), removed)))
        if min(values.values(), default=0) < 0:  # not nested after all: no lines
            lines, never = [], []
            values = {("step", k): c[column] for k, c in enumerate(counts)}
        cells = protect(values, lines, threshold, unreleased=never).cells
        out[column] = [cells[("step", k)] for k in range(len(steps))]
    return [(step[0], out[0][k], out[1][k], out[2][k]) for k, step in enumerate(steps)]


AttritionRow = tuple[str, str, str, str, str]


def attrition_rows(steps: list[tuple[str, int, int, int]], threshold: int) -> list[AttritionRow]:
    """Step, persons, events, the share of the previous step's persons kept, and the
    persons meeting the rule by itself, as text; a share is shown only between shown
    counts."""
    rows = []
    released = attrition_released(steps, threshold)
    for i, (name, persons, events, alone) in enumerate(released):
        before = released[i - 1][1].value if i else None
        kept = NOT_SHOWN
        if before and persons.value is not None:
            kept = f"{100 * persons.value / before:.1f} %"
        rows.append((name, persons.text(), events.text(), kept, alone.text() if i else NOT_SHOWN))
    return rows


def number(value: float | None, digits: int) -> str:
    return NOT_SHOWN if value is None else f"{value:,.{digits}f}"


def table1_cell(kind: str, cell: Cell) -> str:
    """A Table 1 cell: ``n (share %)`` of a yes/no row, ``mean (SD)`` of a measure."""
    if cell.n.hidden:
        return cell.n.text()
    if kind == "binary":
        share = "" if cell.value is None else f" ({100 * cell.value:.1f} %)"
        return f"{cell.n.text()}{share}"
    if cell.value is None:
        return NOT_SHOWN  # no values
    return f"{cell.value:.1f} ({cell.sd or 0:.1f})"


def rate_cells(rate: Rate) -> tuple[str, str, str, str, str]:
    """Persons, events, person-years, rate and interval of a rate row; a rate that is
    not shown says why."""
    interval = (
        f"{rate.lower:.2f}–{rate.upper:.2f}"
        if rate.lower is not None and rate.upper is not None
        else NOT_SHOWN
    )
    value = number(rate.rate, 2) if rate.rate is not None else f"{NOT_SHOWN} ({rate.reason})"
    return (
        rate.persons.text(),
        rate.events.text(),
        number(rate.person_years, 1),
        value,
        interval,
    )


def at_risk_rows(curves: list[SafeCurve]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The numbers-at-risk table: the ticks (years), then per curve its rounded counts
    (``—`` after the curve stops)."""
    ticks = sorted({t for c in curves for t, _ in c.at_risk})
    header = [f"{int(t // 365)} y" for t in ticks]
    rows = []
    for curve in curves:
        at = dict(curve.at_risk)
        rows.append((curve.label, [f"{at[t]:,}" if t in at else NOT_SHOWN for t in ticks]))
    return header, rows


def survival_lines(curve: SafeCurve, days: tuple[int, ...] = (365, 730, 1825)) -> list[str]:
    """The estimates at a few days, as the terminal prints them; none past the curve's end."""
    out = []
    for day in days:
        value = curve.survival_at(day)
        out.append(
            f"survival at {day} days: {value:.3f}"
            if value is not None
            else f"survival at {day} days: {NOT_SHOWN} (fewer than {curve.step} at risk)"
        )
    return out


def pooled_rate_text(rate: PooledRate) -> str:
    """The pooled incidence as one sentence, or why it is not shown."""
    if rate.rate is None or rate.lower is None or rate.upper is None or rate.person_years is None:
        return f"pooled incidence: {rate.reason}"
    return (
        f"pooled incidence: {rate.events} events / {rate.person_years:,.1f} PY = "
        f"{rate.rate:.2f} per 1,000 PY (95 % CI {rate.lower:.2f}–{rate.upper:.2f})"
    )
