"""Small inline SVG charts for the offline HTML reports: no JavaScript, no network, no
plotting dependency. Every text that reaches the SVG is escaped here.

Readable without hovering: bars and columns carry their values (when they fit), stacked
shares their percents, and legends wrap to as many rows as they need. A series named
after a site or a vocabulary has its colour from :mod:`pmhub.palette`, the same in every
chart. A hidden (suppressed) value is ``None``: it is never drawn as 0, but marked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

from pmhub import palette
from pmhub.disclosure import MARK

FONT = 'font-family="system-ui, sans-serif" font-size="11"'
BAR = palette.PALETTE[0]
LEGEND_ENTRY = 130  # px per legend entry; entries wrap to the rows the width allows
Colour = Callable[[str], str]


def _per_row(width: int, left: int) -> int:
    return max(1, (width - left) // LEGEND_ENTRY)


# Characters XML cannot hold (controls, lone surrogates, U+FFFE/U+FFFF): a label from a
# hospital's data must not make the document unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _t(text: object) -> str:
    return escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_t(label)}" {FONT}>'
        f"<title>{_t(label)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def hbars(
    items: Sequence[tuple[str, float | None]],
    label: str,
    width: int = 560,
    tips: Sequence[str] | None = None,
    unit: str = "",
) -> Markup:
    """Horizontal bars, one per item, value (and ``unit``) at the end of the bar; ``tips``
    (one per item) replace the names as hover text. Bars of counts (no unit) carry
    ``class="value count"`` on their labels."""
    kind = "value" if unit else "value count"
    if not items:
        return Markup("")
    row, left, right = 18, 300, 60
    top = max((v for _, v in items if v is not None), default=0) or 1
    body = []
    for i, (name, value) in enumerate(items):
        y = i * row
        w = 0.0 if value is None else (width - left - right) * max(value, 0) / top
        short = name if len(name) <= 46 else name[:44] + "…"
        body.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">'
            f"<title>{_t(tips[i] if tips else name)}</title>"
            f"{_t(short)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{BAR}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 13}" class="{kind}">'
            f"{_t(_value(value))}{_t(unit) if value is not None else ''}</text>"
        )
    return _svg(width, row * len(items) + 4, body, label)


def _value(value: float | None) -> str:
    return MARK if value is None else _fmt(value)


def columns(
    points: Sequence[tuple[str, float | None]], label: str, width: int = 560, height: int = 170
) -> Markup:
    """Vertical columns (a histogram over ordered labels): each column's value on it when
    the columns are wide enough, else the tallest one's; first and last label shown; a
    hidden value is a hatched stub marked (s)."""
    if not points:
        return Markup("")
    bottom, left, head = 20, 40, 14
    top = max((v for _, v in points if v is not None), default=0) or 1
    step = (width - left) / len(points)
    tallest = max(range(len(points)), key=lambda i: points[i][1] or 0)
    body = [
        f'<text x="{left - 4}" y="{head + 10}" text-anchor="end">{_t(_fmt(top))}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    for i, (name, value) in enumerate(points):
        x = left + i * step
        if value is None:
            body.append(
                f'<rect x="{x:.1f}" y="{height - bottom - 4}" width="{max(step - 1, 1):.1f}" '
                f'height="4" fill="#bbb"><title>{_t(name)}: {MARK}</title></rect>'
            )
            continue
        h = (height - bottom - head - 6) * max(value, 0) / top
        body.append(
            f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{BAR}">'
            f"<title>{_t(name)}: {_t(_fmt(value))}</title></rect>"
        )
        if step >= 7 * len(_fmt(value)) or i == tallest:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{height - bottom - h - 3:.1f}" '
                f'text-anchor="middle" class="value count">{_t(_fmt(value))}</text>'
            )
    if any(v is None for _, v in points):
        body.append(f'<text x="{width}" y="10" text-anchor="end">grey: {MARK} suppressed</text>')
    body.append(f'<text x="{left}" y="{height - 5}">{_t(points[0][0])}</text>')
    body.append(f'<text x="{width}" y="{height - 5}" text-anchor="end">{_t(points[-1][0])}</text>')
    return _svg(width, height, body, label)


def lines(
    series: Sequence[tuple[str, Sequence[tuple[str, float | None]]]],
    label: str,
    width: int = 560,
    height: int = 170,
    colour: Colour = palette.colour,
) -> Markup:
    """One line per series over the union of their ordered x labels, with a legend that
    wraps to as many rows as it needs; hidden points are left out of the line."""
    xs = sorted({x for _, points in series for x, _ in points})
    if not xs:
        return Markup("")
    bottom, left = 20, 44
    per_row = _per_row(width, left)
    legend = 16 * ((len(series) + per_row - 1) // per_row)
    plot = height - bottom - 12
    top = max((v for _, pts in series for _, v in pts if v is not None), default=0) or 1
    step = (width - left - 10) / max(len(xs) - 1, 1)
    where = {x: left + i * step for i, x in enumerate(xs)}
    body = [
        f'<text x="{left - 4}" y="{legend + 22}" text-anchor="end">{_t(_fmt(top))}</text>',
        f'<line x1="{left}" y1="{legend + plot}" x2="{width}" y2="{legend + plot}" stroke="#999"/>',
        f'<text x="{left}" y="{legend + plot + 15}">{_t(xs[0])}</text>',
        f'<text x="{width - 10}" y="{legend + plot + 15}" text-anchor="end">{_t(xs[-1])}</text>',
    ]
    for i, (name, points) in enumerate(series):
        shade = colour(name)
        coords = " ".join(
            f"{where[x]:.1f},{legend + plot - (plot - 12) * max(v, 0) / top:.1f}"
            for x, v in points
            if v is not None
        )
        lx, ly = left + LEGEND_ENTRY * (i % per_row), 16 * (i // per_row)
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{shade}" stroke-width="1.5"/>'
            f'<rect x="{lx}" y="{ly + 2}" width="10" height="10" fill="{shade}"/>'
            f'<text x="{lx + 14}" y="{ly + 11}" class="legend">{_t(_short(name))}</text>'
        )
    return _svg(width, legend + plot + 20, body, label)


def _short(name: str, room: int = 18) -> str:
    return name if len(name) <= room else name[: room - 1] + "…"


def boxes(
    rows: Sequence[tuple[str, dict[str, float | None]]], label: str, width: int = 560
) -> Markup:
    """Quantile boxes (p10-p90 whiskers, p25-p75 box, median line) on one shared axis."""
    rows = [(n, s) for n, s in rows if all(s.get(k) is not None for k in ("p10", "p90"))]
    if not rows:
        return Markup("")
    row, left, right = 22, 150, 20
    low = min(float(s["p10"] or 0) for _, s in rows)
    high = max(float(s["p90"] or 0) for _, s in rows)
    span = (high - low) or 1

    def x(v: float | None) -> float:
        return left + (width - left - right) * ((float(v or 0)) - low) / span

    body = []
    for i, (name, s) in enumerate(rows):
        y = i * row + 4
        mid = y + (row - 8) / 2
        body.append(
            f'<text x="{left - 6}" y="{mid + 4}" text-anchor="end">{_t(name[:24])}</text>'
            f'<line x1="{x(s["p10"]):.1f}" y1="{mid}" x2="{x(s["p90"]):.1f}" y2="{mid}" '
            'stroke="#555"/>'
            f'<rect x="{x(s["p25"]):.1f}" y="{y}" width="{max(x(s["p75"]) - x(s["p25"]), 1):.1f}" '
            f'height="{row - 8}" fill="{palette.colour(name)}" opacity="0.7">'
            f"<title>{_t(name)}: p10 "
            f"{_t(s['p10'])}, p25 {_t(s['p25'])}, median {_t(s['median'])}, p75 "
            f"{_t(s['p75'])}, p90 {_t(s['p90'])}</title></rect>"
            f'<line x1="{x(s["median"]):.1f}" y1="{y}" x2="{x(s["median"]):.1f}" '
            f'y2="{y + row - 8}" stroke="#000" stroke-width="2"/>'
        )
    n = len(rows)
    body.append(f'<text x="{left}" y="{n * row + 16}">{_t(_fmt(low))}</text>')
    body.append(
        f'<text x="{width - right}" y="{n * row + 16}" text-anchor="end">{_t(_fmt(high))}</text>'
    )
    return _svg(width, n * row + 22, body, label)


def shares(
    rows: Sequence[tuple[str, Sequence[tuple[str, float | None]]]],
    label: str,
    width: int = 560,
    colour: Colour = palette.colour,
) -> Markup:
    """100 % stacked bars: each row's parts as shares of what is shown (the percent on
    each part wide enough to hold it), with one legend for all rows that wraps as it
    needs; a row with hidden parts says so."""
    keys: list[str] = []
    for _, parts in rows:
        keys.extend(k for k, _ in parts if k not in keys)
    if not keys:
        return Markup("")
    row, left = 20, 150
    per_row = _per_row(width, left)
    legend_rows = (len(keys) + per_row - 1) // per_row
    body = []
    for i, (name, parts) in enumerate(rows):
        known = [(k, v) for k, v in parts if v is not None]
        total = sum(max(v, 0) for _, v in known) or 1
        y, x = i * row, float(left)
        hidden = " *" if len(known) < len(parts) else ""
        body.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_t(name[:24])}{hidden}</text>'
        )
        for key, value in known:
            w = (width - left - 10) * max(value, 0) / total
            pct = 100 * max(value, 0) / total
            body.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{colour(key)}"><title>{_t(name)} · {_t(key)}: '
                f"{pct:.1f} %</title></rect>"
            )
            if w >= 34:
                body.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + 14}" text-anchor="middle" fill="#fff" '
                    f'class="value">{pct:.0f} %</text>'
                )
            x += w
    base = len(rows) * row + 6
    for j, key in enumerate(keys):
        lx, ly = left + LEGEND_ENTRY * (j % per_row), base + 16 * (j // per_row)
        body.append(
            f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{colour(key)}"/>'
            f'<text x="{lx + 14}" y="{ly + 9}" class="legend">{_t(_short(key))}</text>'
        )
    note = ""
    if any(v is None for _, parts in rows for _, v in parts):
        note = (
            f'<text x="{left}" y="{base + 16 * legend_rows + 12}">* parts {MARK} suppressed: '
            "shares of the shown parts</text>"
        )
        legend_rows += 1
    return _svg(width, base + 16 * legend_rows + 4, [*body, note], label)
