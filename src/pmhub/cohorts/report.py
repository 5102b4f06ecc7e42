"""An HTML report: attrition, Table 1, incidence rates, survival plots (SVG inline) and
numbers at risk, one file; every count as :mod:`pmhub.cohorts.released` words it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from pmhub import outputs, palette
from pmhub.cohorts import released
from pmhub.cohorts.released import AttritionRow
from pmhub.disclosure import note

if TYPE_CHECKING:
    from pmhub.cohorts.characterize import Table1
    from pmhub.cohorts.federated import Combined
    from pmhub.cohorts.incidence import Rate
    from pmhub.disclosure.km import SafeCurve

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 72em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.section td { font-weight: 600; background: #f4f4f4; text-align: left; }
.note { color: #555; font-size: .9em; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Site: {{ site }}. {{ note }}</p>
{% if network %}
<h2>Persons by site</h2>
<p class="note">Pooled from each site's exact counts and suppressed as one table of sites
and strata: a small site is hidden with a partner, so that the total less the shown sites
does not give it back.{% if network.not_pooled %} {{ network.not_pooled }}.{% endif %}</p>
<table><tr><th>site</th><th>persons</th></tr>
{% for name, c in network.persons_by_site.items() %}<tr><td><span class="swatch"
style="background: {{ colour(name) }}"></span>{{ name }}</td>
<td class="count">{{ c.text() }}</td></tr>{% endfor %}
<tr><td>all sites</td><td class="count">{{ network.persons.text() }}</td></tr></table>
{% if network.by_sex or network.by_age %}
<h2>Persons by sex and age band (pooled)</h2>
<table><tr><th>stratum</th><th>persons</th></tr>
{% for key, c in network.by_sex.items() %}<tr><td>{{ key }}</td>
<td class="count">{{ c.text() }}</td></tr>{% endfor %}
{% for key, c in network.by_age.items() %}<tr><td>age {{ key }}</td>
<td class="count">{{ c.text() }}</td></tr>{% endfor %}</table>
{% endif %}
{% if pooled %}<h2>Pooled incidence of {{ outcome }}</h2><p>{{ pooled }}</p>{% endif %}
{% endif %}
{% if attrition %}
<h2>Attrition</h2>
<p class="note">Index events and persons left after the entry criteria, then after each
inclusion rule in order (before the limit after the rules, the exit and era collapse).</p>
<table><tr><th>step</th><th>persons</th><th>events</th><th>% of persons kept</th>
<th>persons meeting the rule alone</th></tr>
{% for step, persons, events, kept, alone in attrition %}<tr><td>{{ step }}</td>
<td class="count">{{ persons }}</td><td class="count">{{ events }}</td><td>{{ kept }}</td>
<td class="count">{{ alone }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if table1 %}
<h2>Table 1</h2>
<p class="note">Features at each subject's first cohort entry; conditions and drugs in the
{{ table1.window_days }} days before; SMD against the first cohort.</p>
<table>
<tr><th></th>
{% for c in table1.cohorts %}<th>{{ c[1] }}<br>n = <span class="count">{{ c[2].text() }}</span></th>
{% endfor %}
{% for c in table1.cohorts[1:] %}<th>SMD</th>{% endfor %}</tr>
{% for row in table1.rows %}
{% if loop.first or row.section != table1.rows[loop.index0 - 1].section %}
<tr class="section"><td colspan="{{ 2 * table1.cohorts|length }}">{{ row.section }}</td></tr>
{% endif %}
<tr><td>{{ row.label }}</td>
{% for cell in row.cells %}<td{% if row.kind == "binary" %} class="count"{% endif %}>
{{- cell_text(row.kind, cell) }}</td>{% endfor %}
{% for s in row.smd %}<td>{{ "%.3f"|format(s) if s is not none else "—" }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
{% if rates %}
<h2>Incidence of {{ outcome }}</h2>
<table><tr><th>stratum</th><th>level</th><th>persons</th><th>events</th><th>person-years</th>
<th>rate / 1,000 PY</th><th>95 % CI (exact)</th></tr>
{% for r in rates %}<tr><td>{{ r.stratum }}</td><td>{{ r.level }}</td>
{% for text in rate_cells(r) %}<td{% if loop.index <= 2 %} class="count"{% endif %}>
{{- text }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endif %}
{% if summary %}<p class="count">{{ summary }}</p>{% endif %}
{% for title, svg in plots %}<figure><h2>{{ title }}</h2>{{ svg | safe }}</figure>{% endfor %}
{% if at_risk %}
<h2>Number at risk</h2>
<p class="note">Rounded as the curves are (steps of {{ threshold }}, from their midpoints);
a curve stops where fewer than {{ threshold }} remain at risk (—).</p>
<table><tr><th>curve</th>{% for t in at_risk[0] %}<th>{{ t }}</th>{% endfor %}</tr>
{% for label, cells in at_risk[1] %}<tr><td><span class="swatch"
style="background: {{ colour(label) }}"></span>{{ label }}</td>
{% for c in cells %}<td class="count">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}
</body></html>
"""


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
    curves: list[SafeCurve] | None = None,
    summary: str = "",
    network: Combined | None = None,
) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE)
    svgs = [(name, _svg_body(data)) for name, data in plots or []]
    return template.render(
        title=title,
        site=site,
        threshold=threshold,
        note=note(threshold),
        table1=table1,
        attrition=attrition or [],
        rates=rates or [],
        outcome=outcome,
        plots=svgs,
        at_risk=released.at_risk_rows(curves) if curves else None,
        summary=summary,
        network=network,
        pooled=released.pooled_rate_text(network.pooled_rate)
        if network is not None and network.pooled_rate is not None
        else "",
        colour=palette.colour,
        cell_text=released.table1_cell,
        rate_cells=released.rate_cells,
    )


def _svg_body(data: bytes) -> str:
    """The <svg> element of matplotlib's SVG file (without the XML prologue)."""
    text = data.decode("utf-8")
    return text[text.index("<svg") :]


def write(path: Path, html: str) -> None:
    outputs.write_text(path, html, what="HTML report")
