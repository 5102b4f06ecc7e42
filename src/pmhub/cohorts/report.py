"""An HTML report: attrition, Table 1, incidence rates and survival plots (SVG inline),
one file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from pmhub.cohorts.characterize import Cell, Row, Table1
from pmhub.cohorts.incidence import Rate

if TYPE_CHECKING:
    from pmhub.cohorts.service import AttritionStep

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.section td { font-weight: 600; background: #f4f4f4; text-align: left; }
.note { color: #666; font-size: .9em; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Site: {{ site }}. Counts below {{ threshold }} are suppressed (shown as
&lt;{{ threshold }}).</p>
{% if attrition %}
<h2>Attrition</h2>
<p class="note">Index events and persons left after the entry criteria, then after each
inclusion rule in order (before the limit after the rules, the exit and era collapse).</p>
<table><tr><th>step</th><th>persons</th><th>events</th><th>% of persons kept</th>
<th>persons meeting the rule alone</th></tr>
{% for step, persons, events, kept, alone in attrition %}<tr><td>{{ step }}</td>
<td>{{ persons }}</td><td>{{ events }}</td><td>{{ kept }}</td><td>{{ alone }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if table1 %}
<h2>Table 1</h2>
<p class="note">Features at each subject's first cohort entry; conditions and drugs in the
{{ table1.window_days }} days before; SMD against the first cohort.</p>
<table>
<tr><th></th>
{% for c in table1.cohorts %}<th>{{ c[1] }}<br>n = {{ count(c[2]) }}</th>{% endfor %}
{% for c in table1.cohorts[1:] %}<th>SMD</th>{% endfor %}</tr>
{% for row in table1.rows %}
{% if loop.first or row.section != table1.rows[loop.index0 - 1].section %}
<tr class="section"><td colspan="{{ 2 * table1.cohorts|length }}">{{ row.section }}</td></tr>
{% endif %}
<tr><td>{{ row.label }}</td>
{% for cell in row.cells %}<td>{{ cell_text(row, cell) }}</td>{% endfor %}
{% for s in row.smd %}<td>{{ "%.3f"|format(s) if s is not none else "—" }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
{% if rates %}
<h2>Incidence of {{ outcome }}</h2>
<table><tr><th>stratum</th><th>level</th><th>persons</th><th>events</th><th>person-years</th>
<th>rate / 1,000 PY</th><th>95 % CI (exact)</th></tr>
{% for r in rates %}<tr><td>{{ r.stratum }}</td><td>{{ r.level }}</td>
<td>{{ count(r.persons) }}</td><td>{{ count(r.events) }}</td>
<td>{{ number(r.person_years, 1) }}</td><td>{{ number(r.rate, 2) }}</td>
<td>{% if r.lower is not none %}{{ number(r.lower, 2) }}–{{ number(r.upper, 2) }}
{%- else %}—{% endif %}</td></tr>
{% endfor %}</table>
{% endif %}
{% for title, svg in plots %}<h2>{{ title }}</h2>{{ svg | safe }}{% endfor %}
</body></html>
"""


def _count(value: int | None, threshold: int) -> str:
    return f"<{threshold}" if value is None else f"{value:,}"


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(
    *,
    title: str,
    site: str,
    threshold: int,
    table1: Table1 | None = None,
    rates: list[Rate] | None = None,
    outcome: str = "",
    plots: list[tuple[str, bytes]] | None = None,
    attrition: list[AttritionRow] | None = None,
) -> str:
    def cell_text(row: Row, cell: Cell) -> str:
        if cell.value is None:
            return "0" if cell.n == 0 else f"<{threshold}"
        if row.kind == "binary":
            return f"{cell.n:,} ({100 * cell.value:.1f} %)"
        return f"{cell.value:.1f} ({cell.sd or 0:.1f})"

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE)
    svgs = [(name, _svg_body(data)) for name, data in plots or []]
    return template.render(
        title=title,
        site=site,
        threshold=threshold,
        table1=table1,
        attrition=attrition or [],
        rates=rates or [],
        outcome=outcome,
        plots=svgs,
        count=lambda v: _count(v, threshold),
        number=_number,
        cell_text=cell_text,
    )


AttritionRow = tuple[str, str, str, str, str]


def attrition_rows(steps: list[AttritionStep], threshold: int) -> list[AttritionRow]:
    """Step, persons, events, the share of the previous step's persons kept, and the
    persons meeting the rule by itself, as text; counts from 1 to threshold − 1 are
    suppressed, and so is a share computed from one."""

    def count(value: int) -> str:
        return f"<{threshold}" if 0 < value < threshold else f"{value:,}"

    rows = []
    for i, step in enumerate(steps):
        before = steps[i - 1].persons if i else None
        if before is None or before < threshold or 0 < step.persons < threshold:
            kept = "—"
        else:
            kept = f"{100 * step.persons / before:.1f} %"
        alone = count(step.persons_alone) if i else "—"
        rows.append((step.step, count(step.persons), count(step.events), kept, alone))
    return rows


def _svg_body(data: bytes) -> str:
    """The <svg> element of matplotlib's SVG file (without the XML prologue)."""
    text = data.decode("utf-8")
    return text[text.index("<svg") :]


def write(path: Path, html: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
