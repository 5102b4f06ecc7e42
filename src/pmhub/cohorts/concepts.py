"""Concept sets resolved against a site's vocabulary, through the query model.

Resolution runs on whatever engine holds the vocabulary, so a Spark site resolves its
concept sets against its own concept_ancestor exactly as DuckDB does.
"""

from __future__ import annotations

from collections.abc import Iterator

from pmhub.cohorts import query_model as q
from pmhub.cohorts.definition import (
    ConceptItem,
    ConceptSet,
    ContinuousExposure,
    Definition,
    Ethnicity,
    Events,
    Occurrences,
    Race,
    Sex,
    rule_leaves,
)
from pmhub.cohorts.engines import Engine
from pmhub.cohorts.errors import EmptyConceptSetError, UnknownConceptError

CONCEPT = q.Table("concept", ("concept_id",))
ANCESTOR = q.Table("concept_ancestor", ("ancestor_concept_id", "descendant_concept_id"))
SOURCE_MAP = q.Table(
    "source_to_concept_map", ("source_code", "source_vocabulary_id", "target_concept_id")
)
ResolvedSets = dict[str, tuple[int, ...]]


def _events_ids(path: str, events: Events) -> Iterator[tuple[str, int]]:
    for field in ("unit_concept_ids", "type_concept_ids", "visit_concept_ids"):
        for k, concept in enumerate(getattr(events, field) or []):
            yield f"{path}.{field}[{k}]", concept


def mentioned_concepts(definition: Definition) -> list[tuple[str, int]]:
    """Every concept id the definition names, with the path where it stands."""
    found: list[tuple[str, int]] = []
    for i, cs in enumerate(definition.concept_sets):
        for j, item in enumerate(cs.items):
            if item.concept_id is not None:
                found.append((f"concept_sets[{i}].items[{j}].concept_id", item.concept_id))
    for i, events in enumerate(definition.entry.criteria):
        found.extend(_events_ids(f"entry.criteria[{i}]", events))
    for path, criterion in rule_leaves(definition):
        if isinstance(criterion, Occurrences):
            found.extend(_events_ids(f"{path}.events", criterion.events))
        elif isinstance(criterion, Sex):
            found.extend(
                (f"{path}.sex[{k}]", s) for k, s in enumerate(criterion.sex) if isinstance(s, int)
            )
        elif isinstance(criterion, Race):
            found.extend((f"{path}.race[{k}]", c) for k, c in enumerate(criterion.race))
        elif isinstance(criterion, Ethnicity):
            found.extend((f"{path}.ethnicity[{k}]", c) for k, c in enumerate(criterion.ethnicity))
    for i, events in enumerate(definition.censoring):
        found.extend(_events_ids(f"censoring[{i}]", events))
    return found


def check_concepts(definition: Definition, engine: Engine) -> None:
    """Refuse concept ids the vocabulary does not know, naming where each stands."""
    mentioned = mentioned_concepts(definition)
    if not mentioned:
        return
    ids = tuple(sorted({c for _, c in mentioned}))
    query = q.Where(CONCEPT, q.InValues(q.Col("concept_id"), ids))
    known = {int(r["concept_id"]) for r in engine.rows(query)}
    problems = [f"{path}: unknown concept id {cid}" for path, cid in mentioned if cid not in known]
    if problems:
        raise UnknownConceptError(
            f"{definition.name!r} names concepts the vocabulary lacks:\n  " + "\n  ".join(problems),
            problems,
        )


CONCEPT_CODES = q.Table("concept", ("concept_id", "vocabulary_id", "concept_code"))


def snomed_ids(codes: set[str], engine: Engine) -> dict[str, set[int]]:
    """The concept ids of SNOMED CT codes in the site's concept table (absent: none)."""
    found: dict[str, set[int]] = {code: set() for code in codes}
    if not codes:
        return found
    wanted = q.Or(tuple(q.eq(q.Col("concept_code"), q.Lit(c, "str")) for c in sorted(codes)))
    snomed = q.eq(q.Col("vocabulary_id"), q.Lit("SNOMED", "str"))
    for row in engine.rows(q.Where(CONCEPT_CODES, q.And((snomed, wanted)))):
        found[str(row["concept_code"])].add(int(row["concept_id"]))
    return found


def descendant_map(ids: set[int], engine: Engine) -> dict[int, set[int]]:
    """Each concept with its descendants, in one query."""
    found: dict[int, set[int]] = {i: {i} for i in ids}
    if not ids:
        return found
    query = q.Where(ANCESTOR, q.InValues(q.Col("ancestor_concept_id"), tuple(sorted(ids))))
    for row in engine.rows(query):
        found[int(row["ancestor_concept_id"])].add(int(row["descendant_concept_id"]))
    return found


def descendants(ids: set[int], engine: Engine) -> set[int]:
    if not ids:
        return set()
    query = q.Where(ANCESTOR, q.InValues(q.Col("ancestor_concept_id"), tuple(sorted(ids))))
    # concept_ancestor holds each standard concept as its own ancestor; keep non-standard too
    return ids | {int(r["descendant_concept_id"]) for r in engine.rows(query)}


def _mapped(item: ConceptItem, engine: Engine) -> set[int]:
    assert item.source_codes is not None
    codes = item.source_codes
    query = q.Where(
        SOURCE_MAP, q.Cmp("=", q.Col("source_vocabulary_id"), q.Lit(codes.vocabulary, "str"))
    )
    wanted = set(codes.codes)

    def matches(code: str) -> bool:
        return code in wanted or (codes.prefix and any(code.startswith(w) for w in wanted))

    return {
        int(r["target_concept_id"])
        for r in engine.rows(query)
        if matches(str(r["source_code"])) and r["target_concept_id"]
    }


def _item_concepts(item: ConceptItem, engine: Engine) -> set[int]:
    ids = {item.concept_id} if item.concept_id is not None else _mapped(item, engine)
    return descendants(ids, engine) if item.include_descendants else ids


def resolve_set(concept_set: ConceptSet, engine: Engine, path: str) -> tuple[int, ...]:
    included: set[int] = set()
    excluded: set[int] = set()
    for item in concept_set.items:
        (excluded if item.exclude else included).update(_item_concepts(item, engine))
    result = tuple(sorted(included - excluded))
    if not result:
        raise EmptyConceptSetError(
            f"{path}: concept set {concept_set.id!r} resolves to no concept in this vocabulary "
            "(its source codes map to nothing, or its exclusions remove everything)"
        )
    return result


def used_sets(definition: Definition) -> set[str]:
    names = {e.concept_set for e in definition.entry.criteria}
    names |= {
        c.events.concept_set for _, c in rule_leaves(definition) if isinstance(c, Occurrences)
    }
    names |= {e.concept_set for e in definition.censoring}
    if isinstance(definition.exit, ContinuousExposure):
        names.add(definition.exit.concept_set)
    return {n for n in names if n is not None}


def resolve(definition: Definition, engine: Engine) -> ResolvedSets:
    """Check every concept id, then resolve each concept set the definition uses."""
    check_concepts(definition, engine)
    used = used_sets(definition)
    return {
        cs.id: resolve_set(cs, engine, f"concept_sets[{i}]")
        for i, cs in enumerate(definition.concept_sets)
        if cs.id in used
    }
