"""The hub's side of the feature dictionary: fix the vocabulary from the sites' released
counts. A feature is kept when the counts the sites could show add up to ``min_persons``;
a count a site hid adds nothing (taking it as anything else would guess at a small cell),
so a feature rare everywhere is dropped even when its hidden counts might reach it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pmhub.predict.covariates import Feature, FeatureDictionary, describe, standardised
from pmhub.predict.release import FeatureCount


def fix(
    releases: Sequence[Mapping[str, FeatureCount]],
    info: Mapping[str, Feature] | None = None,
    min_persons: int = 10,
) -> FeatureDictionary:
    keys = sorted({k for release in releases for k in release})
    names = dict(info) if info is not None else {}
    missing = [k for k in keys if k not in names]
    names.update(describe(None, missing))
    kept = []
    for key in keys:
        shown = [r[key] for r in releases if key in r and r[key].persons.value is not None]
        persons = sum(int(c.persons.value or 0) for c in shown)
        if persons < min_persons:
            continue
        total = sum(c.total or 0.0 for c in shown)
        squares = sum(c.squares or 0.0 for c in shown)
        kept.append(standardised(names[key], persons, total, squares))
    return FeatureDictionary(kept, dropped=len(keys) - len(kept))
