"""Vocabulary: the shipped subset, and a full Athena download loaded all-or-nothing."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from pmhub.cdm import schema, vocab
from pmhub.cdm.backends import Backend
from pmhub.errors import VocabularyFileMissingError, VocabularyFormatError

ATHENA = Path(__file__).parent / "fixtures" / "athena"


@pytest.fixture
def athena_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "athena"
    shutil.copytree(ATHENA, folder)
    return folder


def vocabulary_counts(backend: Backend) -> dict[str, int]:
    return {name: backend.count(name) for name in vocab.REQUIRED_FILES}


def concept(backend: Backend, concept_id: int) -> tuple[object, ...] | None:
    rows = backend.fetchall(
        "SELECT concept_name, standard_concept, valid_start_date, invalid_reason "
        "FROM concept WHERE concept_id = ?",
        [concept_id],
    )
    return rows[0] if rows else None


# --- the shipped subset -------------------------------------------------------------------


def test_subset_has_the_everyday_concepts(cdm_backend: Backend):
    for concept_id, name in [
        (0, "No matching concept"),
        (8507, "MALE"),
        (8532, "FEMALE"),
        (8515, "Asian"),
        (9201, "Inpatient Visit"),
        (9202, "Outpatient Visit"),
        (9203, "Emergency Room Visit"),
        (32817, "EHR"),
        (8840, "milligram per deciliter"),
        (313217, "Atrial fibrillation"),
    ]:
        row = concept(cdm_backend, concept_id)
        assert row is not None, concept_id
        assert row[0] == name, concept_id
    assert concept(cdm_backend, 8515)[1] == "S"  # type: ignore[index]
    assert cdm_backend.count("concept") > 2_300


def test_subset_maps_kcd7_codes_to_snomed(cdm_backend: Backend):
    rows = cdm_backend.fetchall(
        "SELECT m.source_code, c.concept_name, c.standard_concept FROM source_to_concept_map m "
        "JOIN concept c ON c.concept_id = m.target_concept_id "
        "WHERE m.source_vocabulary_id = 'KCD7' AND m.source_code IN ('I10', 'E11.9', 'I48')"
        " ORDER BY m.source_code"
    )
    assert rows == [
        ("E11.9", "Type 2 diabetes mellitus", "S"),
        ("I10", "Essential hypertension", "S"),
        ("I48", "Atrial fibrillation", "S"),
    ]


def test_every_kcd7_target_is_a_standard_condition(cdm_backend: Backend):
    rows = cdm_backend.fetchall(
        "SELECT m.source_code, c.domain_id, c.standard_concept FROM source_to_concept_map m "
        "LEFT JOIN concept c ON c.concept_id = m.target_concept_id"
    )
    assert len(rows) >= 50
    assert [r for r in rows if r[1] != "Condition" or r[2] != "S"] == []


def test_subset_ancestry_reaches_descendants_of_extra_concepts(cdm_backend: Backend):
    rows = cdm_backend.fetchall(
        "SELECT descendant_concept_id, min_levels_of_separation FROM concept_ancestor "
        "WHERE ancestor_concept_id = 201820 ORDER BY descendant_concept_id"
    )
    found = dict(rows)
    assert (found[201820], found[201826], found[4024659]) == (0, 1, 1)
    large_intestine = cdm_backend.fetchall(
        "SELECT max_levels_of_separation FROM concept_ancestor "
        "WHERE ancestor_concept_id = 443396 AND descendant_concept_id = 197500"
    )
    assert large_intestine == [(2,)]


def test_subset_concepts_name_known_vocabularies_domains_and_classes(cdm_backend: Backend):
    for column, table in [
        ("vocabulary_id", "vocabulary"),
        ("domain_id", "domain"),
        ("concept_class_id", "concept_class"),
    ]:
        orphans = cdm_backend.fetchall(
            f"SELECT DISTINCT c.{column} FROM concept c LEFT JOIN {table} t "
            f"ON t.{column} = c.{column} WHERE t.{column} IS NULL"
        )
        assert orphans == [], column


# --- an Athena download -------------------------------------------------------------------


def test_athena_download_replaces_the_subset(cdm_backend: Backend):
    result = schema.load_vocabulary(cdm_backend, ATHENA)
    assert result.rows["concept"] == 12
    assert cdm_backend.count("concept") == 12
    assert cdm_backend.count("concept_synonym") == 3
    assert cdm_backend.count("drug_strength") == 1
    assert concept(cdm_backend, 4000001) == (
        'Patient\'s "preferred" name, with comma',
        "S",
        dt.date(2002, 1, 31),
        None,
    )
    assert concept(cdm_backend, 40316773)[1:] == (None, dt.date(1970, 1, 1), "U")  # type: ignore[index]
    synonyms = cdm_backend.fetchall(
        "SELECT concept_synonym_name FROM concept_synonym WHERE language_concept_id = 4175771"
    )
    assert synonyms == [("2형 당뇨병",)]
    # local maps are not part of Athena's download: they stay
    assert cdm_backend.count("source_to_concept_map") >= 50
    version = cdm_backend.fetchall("SELECT vocabulary_version FROM cdm_source")
    assert version == [("v5.0 30-AUG-24",)]


def test_athena_load_is_idempotent(cdm_backend: Backend):
    schema.load_vocabulary(cdm_backend, ATHENA)
    first = vocabulary_counts(cdm_backend)
    schema.load_vocabulary(cdm_backend, ATHENA)
    assert vocabulary_counts(cdm_backend) == first


def test_file_names_in_any_case_and_comma_separated_files_load(
    cdm_backend: Backend, athena_copy: Path
):
    (athena_copy / "CONCEPT_CLASS.csv").rename(athena_copy / "concept_class.csv")
    domain = athena_copy / "DOMAIN.csv"
    domain.write_text(domain.read_text(encoding="utf-8").replace("\t", ","), encoding="utf-8")
    schema.load_vocabulary(cdm_backend, athena_copy)
    assert cdm_backend.count("concept_class") == 9
    assert cdm_backend.count("domain") == 7


def test_progress_reports_bytes_up_to_each_file_size(cdm_backend: Backend):
    seen: dict[str, tuple[int, int]] = {}
    schema.load_vocabulary(
        cdm_backend, ATHENA, lambda t, done, total: seen.update({t: (done, total)})
    )
    assert seen["concept"] == ((ATHENA / "CONCEPT.csv").stat().st_size,) * 2


# --- bad input: a clear message naming the file and line, and nothing half-written --------


def corrupt(folder: Path, filename: str, line: int, new: bytes) -> None:
    path = folder / filename
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = new
    path.write_bytes(b"\n".join(lines))


BAD_INPUTS = [
    pytest.param(
        lambda f: (f / "CONCEPT_ANCESTOR.csv").unlink(),
        VocabularyFileMissingError,
        "CONCEPT_ANCESTOR.csv",
        id="missing-file",
    ),
    pytest.param(
        lambda f: corrupt(f, "CONCEPT.csv", 5, b"1503297\tMetformin\tDrug\tRxNorm"),
        VocabularyFormatError,
        "CONCEPT.csv line 5: 4 fields where the header has 10",
        id="truncated-row",
    ),
    pytest.param(
        lambda f: (f / "RELATIONSHIP.csv").write_text(
            (f / "RELATIONSHIP.csv").read_text(encoding="utf-8").replace("\t", ";"),
            encoding="utf-8",
        ),
        VocabularyFormatError,
        "RELATIONSHIP.csv line 1",
        id="wrong-delimiter",
    ),
    pytest.param(
        lambda f: corrupt(
            f,
            "CONCEPT.csv",
            3,
            (
                "201820\t당뇨병\tCondition\tSNOMED\tClinical Finding\tS\t73211009\t"
                "19700101\t20991231\t"
            ).encode("cp949"),
        ),
        VocabularyFormatError,
        "CONCEPT.csv line 3: bytes that are not UTF-8",
        id="cp949-bytes",
    ),
    pytest.param(
        lambda f: corrupt(
            f, "CONCEPT_RELATIONSHIP.csv", 4, b"201826\t201820\tIs a\t20230230\t20991231\t"
        ),
        VocabularyFormatError,
        "CONCEPT_RELATIONSHIP.csv line 4: valid_start_date '20230230' is not a date",
        id="impossible-date",
    ),
    pytest.param(
        lambda f: corrupt(f, "CONCEPT_ANCESTOR.csv", 3, b"201820\tabc\t1\t1"),
        VocabularyFormatError,
        "CONCEPT_ANCESTOR.csv line 3: descendant_concept_id 'abc' is not an integer",
        id="not-an-integer",
    ),
    pytest.param(
        lambda f: corrupt(f, "DOMAIN.csv", 2, b"\tCondition\t19"),
        VocabularyFormatError,
        "DOMAIN.csv line 2: domain_id is empty",
        id="required-field-empty",
    ),
    pytest.param(
        lambda f: corrupt(
            f,
            "CONCEPT.csv",
            3,
            b"201826\tDuplicate\tCondition\tSNOMED\tClinical Finding\tS\t1\t19700101\t20991231\t",
        ),
        VocabularyFormatError,
        "duplicate key",
        id="duplicate-key",
    ),
]


@pytest.mark.parametrize(("damage", "error", "message"), BAD_INPUTS)
def test_bad_vocabulary_is_refused_and_nothing_changes(
    cdm_backend: Backend, athena_copy: Path, damage, error, message
):
    before = vocabulary_counts(cdm_backend)
    damage(athena_copy)
    with pytest.raises(error) as caught:
        schema.load_vocabulary(cdm_backend, athena_copy)
    assert message in caught.value.message
    assert vocabulary_counts(cdm_backend) == before


def test_missing_folder_is_a_clear_error(cdm_backend: Backend, tmp_path: Path):
    with pytest.raises(VocabularyFileMissingError, match="does not exist"):
        schema.load_vocabulary(cdm_backend, tmp_path / "nowhere")
