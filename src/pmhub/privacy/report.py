"""The adequacy review document (적정성 검토 자료) as HTML, from the release's JSON report."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


def environment() -> Environment:
    return Environment(
        loader=PackageLoader("pmhub.privacy", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(document: dict[str, Any]) -> str:
    """Every value is escaped: sample rows and column names come from the data."""
    return environment().get_template("report.html.j2").render(doc=document)
