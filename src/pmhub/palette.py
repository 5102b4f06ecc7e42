"""One colour per site and per vocabulary, the same in every chart and report.

Known names (the site catalogue, in its order, and the vocabularies pmhub ships or maps)
have fixed colours; any other name takes one from the same palette by a stable hash of
its text, so a name keeps its colour from one run, chart or machine to the next.
Colours are the Okabe-Ito and Tableau sets: distinguishable with colour-vision
deficiencies, and dark enough for white text labels.
"""

from __future__ import annotations

import hashlib

PALETTE = (
    "#0072b2",  # blue
    "#d55e00",  # vermillion
    "#009e73",  # green
    "#cc79a7",  # purple-pink
    "#e69f00",  # orange
    "#56b4e9",  # sky blue
    "#8c564b",  # brown
    "#7f7f7f",  # grey
    "#6a3d9a",  # plum
    "#17becf",  # teal
    "#9467bd",  # violet
    "#1f3a93",  # navy
)
SITES = (
    "chuncheon_univ",
    "gangneung_general",
    "jeongseon_county",
    "wonju_general",
    "sokcho_county",
    "samcheok_county",
    "hongcheon_county",
    "cheorwon_county",
    "donghae_general",
)
VOCABULARIES = (
    "SNOMED",
    "LOINC",
    "RxNorm",
    "ICD10CM",
    "KCD7",
    "ATC",
    "UCUM",
    "Gender",
    "Race",
    "Visit",
    "None",
)
FIXED = {
    **{name: PALETTE[i % len(PALETTE)] for i, name in enumerate(SITES)},
    **{f"vocabulary:{v}": PALETTE[i % len(PALETTE)] for i, v in enumerate(VOCABULARIES)},
}


def colour(name: str) -> str:
    """The colour of a site, a cohort, or any other named series."""
    if name in FIXED:
        return FIXED[name]
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def vocabulary(vocabulary_id: str) -> str:
    """The colour of a vocabulary (vocabulary_id as in the OMOP vocabulary table)."""
    return colour(f"vocabulary:{vocabulary_id}")
