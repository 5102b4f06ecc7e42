"""Small inline SVG charts for the offline HTML reports: no JavaScript, no network, no
plotting dependency. Every text that reaches the SVG is escaped here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2f6fb0", "#d9822b", "#3a9a5b", "#b8453c", "#7a5bb0", "#8c6d46", "#c45c9a", "#5f7f8c")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


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
    items: Sequence[tuple[str, float]],
    label: str,
    width: int = 560,
    tips: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, one per item, value at the end of the bar; ``tips`` (one per item)
    replace the names as hover text."""
    if not items:
        return Markup("")
    row, left, right = 18, 300, 60
    top = max((v for _, v in items), default=0) or 1
    body = []
    for i, (name, value) in enumerate(items):
        y = i * row
        w = (width - left - right) * max(value, 0) / top
        short = name if len(name) <= 46 else name[:44] + "…"
        body.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">'
            f"<title>{_t(tips[i] if tips else name)}</title>"
            f"{_t(short)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{color(0)}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 13}">{_t(_fmt(value))}</text>'
        )
    return _svg(width, row * len(items) + 4, body, label)


def columns(
    points: Sequence[tuple[str, float]], label: str, width: int = 560, height: int = 160
) -> Markup:
    """Vertical columns (a histogram over ordered labels); first and last label shown."""
    if not points:
        return Markup("")
    bottom, left = 20, 40
    top = max((v for _, v in points), default=0) or 1
    step = (width - left) / len(points)
    body = [
        f'<text x="{left - 4}" y="10" text-anchor="end">{_t(_fmt(top))}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    for i, (name, value) in enumerate(points):
        h = (height - bottom - 6) * max(value, 0) / top
        x = left + i * step
        body.append(
            f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{color(0)}">'
            f"<title>{_t(name)}: {_t(_fmt(value))}</title></rect>"
        )
    body.append(f'<text x="{left}" y="{height - 5}">{_t(points[0][0])}</text>')
    body.append(f'<text x="{width}" y="{height - 5}" text-anchor="end">{_t(points[-1][0])}</text>')
    return _svg(width, height, body, label)


def lines(
    series: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    label: str,
    width: int = 560,
    height: int = 170,
) -> Markup:
    """One line per series over the union of their ordered x labels, with a legend."""
    xs = sorted({x for _, points in series for x, _ in points})
    if not xs:
        return Markup("")
    bottom, left, legend = 20, 44, 16 * ((len(series) + 3) // 4)
    plot = height - bottom - legend
    top = max((v for _, pts in series for _, v in pts), default=0) or 1
    step = (width - left - 10) / max(len(xs) - 1, 1)
    where = {x: left + i * step for i, x in enumerate(xs)}
    body = [
        f'<text x="{left - 4}" y="{legend + 10}" text-anchor="end">{_t(_fmt(top))}</text>',
        f'<line x1="{left}" y1="{legend + plot}" x2="{width}" y2="{legend + plot}" stroke="#999"/>',
        f'<text x="{left}" y="{height - 5}">{_t(xs[0])}</text>',
        f'<text x="{width - 10}" y="{height - 5}" text-anchor="end">{_t(xs[-1])}</text>',
    ]
    for i, (name, points) in enumerate(series):
        coords = " ".join(
            f"{where[x]:.1f},{legend + plot - plot * max(v, 0) / top:.1f}" for x, v in points
        )
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{color(i)}" stroke-width="1.5"/>'
            f'<rect x="{left + 130 * (i % 4)}" y="{16 * (i // 4) + 2}" width="10" height="10" '
            f'fill="{color(i)}"/><text x="{left + 130 * (i % 4) + 14}" y="{16 * (i // 4) + 11}">'
            f"{_t(name[:18])}</text>"
        )
    return _svg(width, height, body, label)


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
            f'height="{row - 8}" fill="{color(i)}" opacity="0.7"><title>{_t(name)}: p10 '
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
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], label: str, width: int = 560
) -> Markup:
    """100 % stacked bars: each row's parts as shares, with one legend for all rows."""
    keys: list[str] = []
    for _, parts in rows:
        keys.extend(k for k, _ in parts if k not in keys)
    if not keys:
        return Markup("")
    row, left = 20, 150
    legend_rows = (len(keys) + 3) // 4
    body = []
    for i, (name, parts) in enumerate(rows):
        total = sum(max(v, 0) for _, v in parts) or 1
        y, x = i * row, float(left)
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_t(name[:24])}</text>')
        for key, value in parts:
            w = (width - left - 10) * max(value, 0) / total
            pct = 100 * max(value, 0) / total
            body.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{color(keys.index(key))}"><title>{_t(name)} · {_t(key)}: '
                f"{pct:.1f} %</title></rect>"
            )
            x += w
    base = len(rows) * row + 6
    for j, key in enumerate(keys):
        lx, ly = left + 130 * (j % 4), base + 16 * (j // 4)
        body.append(
            f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color(j)}"/>'
            f'<text x="{lx + 14}" y="{ly + 9}">{_t(key[:18])}</text>'
        )
    return _svg(width, base + 16 * legend_rows + 4, body, label)
