"""Look-ups in the target CDW: source codes → concepts, source patients → person ids.

Codes are mapped as OHDSI ETLs do: the source code's concept (vocabulary + code), then
its 'Maps to' relationship to a valid standard concept; a standard source concept maps to
itself. Codes of local vocabularies with no concepts (KCD-7 in the shipped subset) go
through ``source_to_concept_map``. KCD-7 codes are compared without their dot, so that
E11.9 and E119 find the same map. A code with no map gets concept 0 and keeps its source
value and source concept.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pmhub.ingest.engine import STAGE, Engine

CODE_MAP_SQL = """
SELECT k.vocabulary_id, k.code,
       coalesce(sc.concept_id, stcm.source_concept_id, 0) AS source_concept_id,
       coalesce(t.concept_id,
                CASE WHEN sc.standard_concept = 'S' AND sc.invalid_reason IS NULL
                     THEN sc.concept_id END,
                st.concept_id, 0) AS concept_id,
       coalesce(t.domain_id,
                CASE WHEN sc.standard_concept = 'S' AND sc.invalid_reason IS NULL
                     THEN sc.domain_id END,
                st.domain_id) AS domain_id
FROM pmhub_codes k
LEFT JOIN concept sc
       ON sc.vocabulary_id = k.vocabulary_id AND sc.concept_code = k.code
LEFT JOIN concept_relationship r
       ON r.concept_id_1 = sc.concept_id AND r.relationship_id = 'Maps to'
      AND r.invalid_reason IS NULL
LEFT JOIN concept t
       ON t.concept_id = r.concept_id_2 AND t.standard_concept = 'S'
      AND t.invalid_reason IS NULL
LEFT JOIN source_to_concept_map stcm
       ON sc.concept_id IS NULL AND stcm.source_vocabulary_id = k.vocabulary_id
      AND upper(replace(stcm.source_code, '.', '')) = k.norm_code
      AND stcm.invalid_reason IS NULL
LEFT JOIN concept st ON st.concept_id = stcm.target_concept_id
"""

# Persons that this very load mapped (before it was killed) are not "known": a resumed
# load must see the CDW as the load first saw it, and make the same persons again.
PERSON_MAP_SQL = """
SELECT m.source_id, m.person_id FROM pmhub_person_map m
JOIN pmhub_patient_keys k ON k.source_id = m.source_id
WHERE m.load_id <> {load_id}
"""


def map_codes(engine: Engine, codes_sql: str) -> None:
    """``codes_sql`` yields (vocabulary_id, code); the result is ``pmhub_stage.code_map``
    (vocabulary_id, code, source_concept_id, concept_id, domain_id), one row per target."""
    codes = engine.work.sql(
        f"SELECT DISTINCT vocabulary_id, code, upper(replace(code, '.', '')) AS norm_code "
        f"FROM ({codes_sql}) WHERE code IS NOT NULL"
    ).to_arrow_table()
    found = engine.target_lookup("pmhub_codes", codes, CODE_MAP_SQL)
    engine.put("code_map_raw", _plain(found))
    # duplicate concept rows (same code twice in a vocabulary) must not double events
    engine.run(
        f"CREATE OR REPLACE TABLE {STAGE}.code_map AS SELECT DISTINCT vocabulary_id, code, "
        "CAST(source_concept_id AS INTEGER) AS source_concept_id, "
        "CAST(concept_id AS INTEGER) AS concept_id, domain_id "
        f"FROM {STAGE}.code_map_raw"
    )
    # a code with a real map does not also keep a 0 row from a second source concept
    engine.run(
        f"DELETE FROM {STAGE}.code_map c WHERE concept_id = 0 AND EXISTS (SELECT 1 FROM "
        f"{STAGE}.code_map d WHERE d.vocabulary_id = c.vocabulary_id AND d.code = c.code "
        "AND d.concept_id <> 0)"
    )
    # each of a code's targets numbered 0, 1, …: a source row's k-th target row gets an id
    # from its line and k, with no sort of the events (see clinical._event_table)
    engine.run(
        f"CREATE OR REPLACE TABLE {STAGE}.code_map AS SELECT *, CAST(row_number() OVER "
        "(PARTITION BY vocabulary_id, code ORDER BY concept_id, source_concept_id, domain_id)"
        f" - 1 AS INTEGER) AS target_rank FROM {STAGE}.code_map"
    )


def known_persons(engine: Engine, keys_sql: str, load_id: int) -> None:
    """``pmhub_stage.known_person`` (source_id, person_id) for the source patients in
    ``keys_sql`` that earlier loads already gave a person_id.

    When no earlier load mapped anyone (a site's first load), the source's keys are not
    gathered at all: every file's patient column would be read for nothing.
    """
    found = pa.table({})
    if earlier_persons(engine, load_id):
        keys = engine.work.sql(
            f"SELECT DISTINCT source_id FROM ({keys_sql}) WHERE source_id IS NOT NULL"
        ).to_arrow_table()
        found = engine.target_lookup(
            "pmhub_patient_keys", keys, PERSON_MAP_SQL.format(load_id=int(load_id))
        )
    if found.num_rows == 0:
        found = pa.table(
            {"source_id": pa.array([], pa.string()), "person_id": pa.array([], pa.int64())}
        )
    engine.put("known_person", _plain(found))


def earlier_persons(engine: Engine, load_id: int) -> bool:
    """Whether loads before ``load_id`` gave this site's patients person ids (then every
    file's patient ids are looked up among theirs, and are staged as text)."""
    return bool(
        engine.target.fetchall(
            "SELECT 1 FROM pmhub_person_map WHERE load_id <> ? LIMIT 1", [int(load_id)]
        )
    )


def _plain(data: pa.Table) -> pa.Table:
    """PostgreSQL answers come back as Python-typed columns; nulls-only columns need a type."""
    columns: list[pa.ChunkedArray[Any]] = []
    for name in data.column_names:
        column = data.column(name)
        columns.append(column.cast(pa.string()) if pa.types.is_null(column.type) else column)
    return pa.Table.from_arrays(columns, names=data.column_names)
