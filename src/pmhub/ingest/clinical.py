"""The clinical transform: Synthea-shaped stage tables → OMOP CDM rows, as set-based SQL.

Both the Synthea CSV importer and the FHIR importer fill stage tables named and shaped as
Synthea's CSV files (``patients``, ``encounters``, ``conditions`` …, text columns plus
``_line``); this module validates them, routes bad rows to quarantine, and builds one
``out_<cdm table>`` stage table per CDM table. Conventions follow OHDSI ETL-Synthea:

* person from patients (gender M/F → 8507/8532, race and ethnicity by name), location from
  the patients' addresses, death from DEATHDATE;
* care_site from organizations, provider from providers;
* visit_occurrence: inpatient encounters of a patient that overlap or lie at most one day
  apart are rolled up into one inpatient visit (9201); any other encounter that starts
  inside such a stay joins it; every other encounter is its own visit (emergency and
  urgent care 9203, ambulatory/wellness/outpatient 9202, anything else 0 with its class kept
  as the source value). visit_detail keeps one row per encounter, linked to its visit.
* conditions, medications, immunizations, procedures, observations, allergies and devices
  go to the table of their mapped standard concept's domain; unmapped codes (concept 0) go
  to the file's usual table with their source value and source concept.
* observation_period and the eras are derived afterwards in the CDW (:mod:`derived`).

Timestamps keep their wall-clock value (Synthea's ``Z`` marks UTC; offsets are dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pmhub.ingest.engine import STAGE, Engine
from pmhub.ingest.mapping import known_persons, map_codes
from pmhub.ingest.sqlgen import (
    Rule,
    blank,
    cdm_select,
    literal,
    longer,
    quarantine_rows,
    quote_value,
    rule_column,
)
from pmhub.ingest.stage import add_missing_columns, empty_stage

S = STAGE

# Columns the transform reads from each Synthea-shaped file (lower case). Columns a source
# lacks are added as NULL; the required ones must be in the header.
COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": (
        "id", "birthdate", "deathdate", "race", "ethnicity", "gender", "address", "city",
        "state", "county", "zip", "lat", "lon",
    ),
    "organizations": ("id", "name", "address", "city", "state", "zip", "lat", "lon"),
    "providers": ("id", "organization", "name", "gender", "speciality"),
    "payers": ("id", "name"),
    # Synthea 2.x/3.0 write START_YEAR/END_YEAR (3.0 fills them with timestamps), 3.3
    # START_DATE/END_DATE; OWNERSHIP became PLAN_OWNERSHIP
    "payer_transitions": (
        "patient", "memberid", "start_year", "end_year", "start_date", "end_date", "payer",
        "secondary_payer", "ownership", "plan_ownership",
        "payer_name",  # not Synthea's: a FHIR Coverage's payor name
    ),
    "encounters": (
        "id", "start", "stop", "patient", "organization", "provider", "encounterclass", "code",
    ),
    "conditions": ("start", "stop", "patient", "encounter", "system", "code"),
    "medications": ("start", "stop", "patient", "encounter", "code", "dispenses"),
    "immunizations": ("date", "patient", "encounter", "code"),
    "procedures": ("start", "date", "stop", "patient", "encounter", "system", "code"),
    # (an observation's TYPE, numeric or text, is not read: its value says as much)
    "observations": ("date", "patient", "encounter", "category", "code", "value", "units"),
    "allergies": ("start", "stop", "patient", "encounter", "system", "code", "category"),
    "devices": ("start", "stop", "patient", "encounter", "code", "udi"),
}  # fmt: skip
REQUIRED: dict[str, tuple[str, ...]] = {
    "patients": ("id", "birthdate"),
    "organizations": ("id",),
    "providers": ("id",),
    "payers": ("id",),
    "payer_transitions": ("patient", "payer"),
    "encounters": ("id", "start", "patient"),
    "conditions": ("start", "patient", "code"),
    "medications": ("start", "patient", "code"),
    "immunizations": ("date", "patient", "code"),
    "procedures": ("patient", "code"),
    "observations": ("date", "patient", "code"),
    "allergies": ("start", "patient", "code"),
    "devices": ("start", "patient", "code"),
}
EVENT_FILES = (
    "conditions", "medications", "immunizations", "procedures", "observations", "allergies",
    "devices",
)  # fmt: skip
# per file, the ids that may be staged as their hashes (``<column>_h``): only joined on
HASHED: dict[str, tuple[str, ...]] = {
    "encounters": ("patient", "organization", "provider"),
    **{name: ("patient", "encounter") for name in EVENT_FILES},
}
# ETL-Synthea does not map these into clinical tables; they are reported, never read.
IGNORED_FILES = (
    "careplans", "claims", "claims_transactions", "imaging_studies", "supplies",
)  # fmt: skip

EVENT_TABLES = (
    "condition_occurrence", "drug_exposure", "procedure_occurrence", "measurement",
    "observation", "device_exposure",
)  # fmt: skip
DOMAIN_TABLE = {
    "Condition": "condition_occurrence",
    "Drug": "drug_exposure",
    "Procedure": "procedure_occurrence",
    "Measurement": "measurement",
    "Observation": "observation",
    "Device": "device_exposure",
}
# ETL-Synthea merges these classes' same-day encounters of a patient into one visit
SAME_DAY_CLASSES = ("emergency", "urgent", "urgentcare", "ambulatory", "wellness", "outpatient")
EHR = 32817  # Type Concept 'EHR'
EHR_ENCOUNTER = 32827  # 'EHR encounter record': visits, immunizations
EHR_PRESCRIPTION = 32838

_BY_SYSTEM = (
    "CASE WHEN lower(t.system) LIKE '%rxnorm%' THEN 'RxNorm' "
    "WHEN lower(t.system) LIKE '%loinc%' THEN 'LOINC' "
    "WHEN lower(t.system) LIKE '%kcd%' THEN 'KCD7' "
    "WHEN lower(t.system) LIKE '%icd%10%' THEN 'ICD10' ELSE 'SNOMED' END"
)
# Synthea 3.0 conditions carry no SYSTEM column; Korean exports write KCD-7 codes (a letter
# and two digits: E11.9, E119) where Synthea writes SNOMED (digits only).
_DIAGNOSIS = (
    "CASE WHEN t.system IS NULL AND regexp_matches(t.code, '^[A-Za-z][0-9][0-9]') "
    f"THEN 'KCD7' ELSE {_BY_SYSTEM} END"
)
# Per event file: vocabulary, value, units, extra (quantity / UDI / type), category.
_EVENT_COLUMNS = {
    "conditions": (_DIAGNOSIS, "NULL", "NULL", "NULL", "NULL"),
    "medications": ("'RxNorm'", "NULL", "NULL", "t.dispenses", "NULL"),
    "immunizations": ("'CVX'", "NULL", "NULL", "NULL", "NULL"),
    "procedures": (_BY_SYSTEM, "NULL", "NULL", "NULL", "NULL"),
    "observations": ("'LOINC'", "t.value", "t.units", "NULL", "t.category"),
    "allergies": (_BY_SYSTEM, "NULL", "NULL", "NULL", "t.category"),
    "devices": ("'SNOMED'", "NULL", "NULL", "t.udi", "NULL"),
}

_NO_STOP = ("immunizations", "observations")  # event files with a date, not a period

# The order in which tables are published (foreign keys point backwards).
PUBLISH_ORDER = (
    "location", "care_site", "provider", "person", "payer_plan_period", "visit_occurrence",
    "visit_detail",
    *EVENT_TABLES, "death",
)  # fmt: skip


@dataclass
class Transform:
    engine: Engine
    bases: dict[str, int]
    now: str  # the load's start, as an ISO timestamp: dates after it are in the future
    present: set[str]  # stage tables that came from a source file
    delimiters: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # stage table → file name shown
    load_id: int = 0
    # where each event file's lines start in the event ids, and the most targets of a code
    line_offsets: dict[int, int] = field(default_factory=dict)
    targets_per_code: int = 1
    # whether events find their encounter by the hash of its id (:meth:`_encounter_join`)
    _encounters_by_hash: bool = True
    # stages a file again with the texts of its ids (one staged hashed, ``HASHED``)
    restage: Callable[[str], None] | None = None
    # whether persons', providers' and organizations' ids hash uniquely (None: not checked)
    _keys_unique: bool | None = None
    # per CDM event table, the files that hold valid rows for it
    file_targets: dict[str, set[str]] = field(default_factory=dict)

    def run(self) -> None:
        for name, columns in COLUMNS.items():
            if name in self.present:
                add_missing_columns(self.engine, name, columns)
            else:
                empty_stage(self.engine, name, columns)
        self._patients()
        self._organizations()
        self._providers()
        self._payers()
        self._encounters()
        self._visits()
        self._events()

    # --- helpers --------------------------------------------------------------------

    def _date_rules(self, label: str, raw: str, typed: str, *, required: bool) -> list[Rule]:
        """Rules on a date column, checked on its parsed value (parsed once)."""
        rules = []
        if required:
            rules.append(Rule(label, f"{raw} IS NULL", "'missing'"))
        rules.append(
            Rule(
                label,
                f"{raw} IS NOT NULL AND {typed} IS NULL",
                f"'not a valid date: ' || {quote_value(raw)}",
            )
        )
        rules.append(
            Rule(
                label,
                f"{typed} > TIMESTAMP {literal(self.now)}",
                f"'date in the future: ' || {quote_value(raw)}",
            )
        )
        return rules

    def _id_rules(self, label: str, column: str = "id") -> list[Rule]:
        """Missing, overlong and repeated ids; a repeat keeps its first row (``_first``
        comes from the duplicate join that :meth:`_validate` adds for ``dup_key``)."""
        return [
            Rule(label, blank(column), "'missing id'"),
            Rule(label, longer(column, 50), "'id longer than 50 characters'"),
            Rule(
                label,
                "_first IS NOT NULL AND _line <> _first",
                f"'duplicate id ' || {quote_value(column)} || ' (first on line ' || _first || ')'",
            ),
        ]

    def _validate(
        self,
        name: str,
        rules: list[Rule],
        *,
        typed: dict[str, str] | None = None,
        joins: str = "",
        dup_key: str | None = None,
        narrow: bool = False,
        transient: tuple[str, ...] = (),
        quarantine: bool = True,
    ) -> None:
        """``v_<name>``: each stage row's typed values and ``_rule``, the first rule it
        breaks (NULL when it passes). Values are parsed and joined once, here; the rules
        read them. A ``narrow`` table keeps only ``_line``, the typed columns but the
        ``transient`` ones (which only rules read) and, with a ``dup_key``, ``_first``
        (which the duplicate rule's reason quotes). Without ``quarantine`` the rows set
        aside are not copied to the quarantine (nor their reasons spelt out)."""
        typed = typed or {}
        extra = "".join(f", {expr} AS {col}" for col, expr in typed.items())
        first = []
        if dup_key:
            extra += ", _d._first"
            # ids whose 64-bit hash repeats first (grouping integers is cheaper than
            # grouping long texts; kept in ``rep_<name>``, most often empty), then the
            # real repeats among those few
            self.engine.run(
                f"CREATE OR REPLACE TABLE {S}.rep_{name} AS SELECT hash({dup_key}) AS h "
                f"FROM {S}.{name} GROUP BY 1 HAVING count(*) > 1"
            )
            joins += (
                f" LEFT JOIN (SELECT {dup_key} AS _dup_key, min(_line) AS _first "
                f"FROM {S}.{name} WHERE hash({dup_key}) IN (SELECT h FROM {S}.rep_{name}) "
                f"GROUP BY {dup_key} HAVING count(*) > 1) _d ON _d._dup_key = t.{dup_key}"
            )
            first = ["_first"]
        else:
            extra += ", CAST(NULL AS BIGINT) AS _first"
        if narrow:
            kept = ", ".join(["_line", *(c for c in typed if c not in transient), *first])
        else:
            kept = "*" if dup_key else "* EXCLUDE (_first)"
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.v_{name} AS SELECT {kept}, {rule_column(rules)} "
            f"FROM (SELECT t.*{extra} FROM {S}.{name} t {joins}) t"
        )
        if not quarantine:
            return
        quarantine_rows(
            self.engine,
            f"v_{name}",
            name,
            self.files.get(name, f"{name}.csv"),
            [c for c in self._stage_columns(name) if not c.startswith("_")],
            rules,
            self.delimiters.get(name, ","),
        )

    def _free(self, name: str) -> None:
        """Drop a stage table nothing reads any more (its rows are validated and the ones
        set aside quarantined), so that a large load holds less and does not spill."""
        self.engine.run(f"DROP TABLE {S}.{name}")

    def _stage_columns(self, name: str) -> list[str]:
        return self.engine.columns(name)

    def _valid(self, name: str) -> str:
        return f"(SELECT * FROM {S}.v_{name} WHERE _rule IS NULL)"

    # --- people, places, providers --------------------------------------------------

    def _patients(self) -> None:
        rules = [
            *self._id_rules("Id"),
            *self._date_rules("BIRTHDATE", "birthdate", "birth_ts", required=True),
            *self._date_rules("DEATHDATE", "deathdate", "death_ts", required=False),
            Rule(
                "DEATHDATE",
                "death_ts < birth_ts",
                "'death (' || deathdate || ') before birth (' || birthdate || ')'",
            ),
        ]
        typed = {"birth_ts": "pmhub_ts(t.birthdate)", "death_ts": "pmhub_ts(t.deathdate)"}
        self._validate("patients", rules, typed=typed, dup_key="id")
        known_persons(
            self.engine,
            " UNION ".join(
                f"SELECT DISTINCT patient AS source_id FROM {S}.{n}"
                for n in ("encounters", *EVENT_FILES)
            )
            + f" UNION SELECT id FROM {S}.patients",
            self.load_id,
        )
        base = self.bases["person"]
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.new_person AS SELECT p.*, "
            f"{base} + row_number() OVER (ORDER BY p._line) AS person_id "
            f"FROM {self._valid('patients')} p "
            f"WHERE p.id NOT IN (SELECT source_id FROM {S}.known_person)"
        )
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.person_ids AS "
            f"SELECT source_id, CAST(person_id AS BIGINT) AS person_id FROM {S}.known_person "
            f"UNION ALL SELECT id, person_id FROM {S}.new_person"
        )
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.out_person_map AS SELECT id AS source_id, "
            f"CAST(person_id AS BIGINT) AS person_id, CAST({self.load_id} AS BIGINT) AS load_id "
            f"FROM {S}.new_person"
        )
        self._locations()
        self._person()

    def _locations(self) -> None:
        base = self.bases["location"]
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.loc AS SELECT address, city, state, zip, county, "
            "min(lat) AS lat, min(lon) AS lon, "
            f"{base} + row_number() OVER (ORDER BY min(_line)) AS location_id "
            f"FROM {S}.new_person WHERE coalesce(address, city, state, zip, county) IS NOT NULL "
            "GROUP BY ALL"
        )
        select = cdm_select(
            "location",
            {
                "location_id": "location_id",
                "address_1": "address",
                "city": "city",
                "state": "state",
                "zip": "zip",
                "county": "county",
                "location_source_value": "concat_ws(' ', address, city, state, zip)",
                # (a coordinate that is not a finite number is left out, as one that is
                # not a number: the place is kept, the person too)
                "latitude": "CASE WHEN isfinite(pmhub_num(lat)) THEN pmhub_num(lat) END",
                "longitude": "CASE WHEN isfinite(pmhub_num(lon)) THEN pmhub_num(lon) END",
            },
        )
        self.engine.run(f"CREATE OR REPLACE VIEW {S}.out_location AS SELECT {select} FROM {S}.loc")

    def _person(self) -> None:
        gender = (
            "CASE upper(trim(p.gender)) WHEN 'M' THEN 8507 WHEN 'MALE' THEN 8507 "
            "WHEN '남' THEN 8507 WHEN 'F' THEN 8532 WHEN 'FEMALE' THEN 8532 "
            "WHEN '여' THEN 8532 ELSE 0 END"
        )
        race = (
            "CASE lower(trim(p.race)) WHEN 'white' THEN 8527 WHEN 'black' THEN 8516 "
            # ETL-Synthea's insert_person: white, black and asian; any other race is 0
            # (its source value kept); Korean exports write 'korean'
            "WHEN 'asian' THEN 8515 WHEN 'korean' THEN 8515 ELSE 0 END"
        )
        ethnicity = (
            "CASE lower(trim(p.ethnicity)) WHEN 'hispanic' THEN 38003563 "
            "WHEN 'nonhispanic' THEN 38003564 ELSE 0 END"
        )
        select = cdm_select(
            "person",
            {
                "person_id": "p.person_id",
                "gender_concept_id": gender,
                "year_of_birth": "year(p.birth_ts)",
                "month_of_birth": "month(p.birth_ts)",
                "day_of_birth": "day(p.birth_ts)",
                "birth_datetime": "p.birth_ts",
                "race_concept_id": race,
                "ethnicity_concept_id": ethnicity,
                "location_id": "l.location_id",
                "person_source_value": "p.id",
                "gender_source_value": "p.gender",
                "gender_source_concept_id": "0",
                "race_source_value": "p.race",
                "race_source_concept_id": "0",
                "ethnicity_source_value": "p.ethnicity",
                "ethnicity_source_concept_id": "0",
            },
        )
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.out_person AS SELECT {select} FROM {S}.new_person p "
            f"LEFT JOIN {S}.loc l ON l.address IS NOT DISTINCT FROM p.address "
            "AND l.city IS NOT DISTINCT FROM p.city AND l.state IS NOT DISTINCT FROM p.state "
            "AND l.zip IS NOT DISTINCT FROM p.zip AND l.county IS NOT DISTINCT FROM p.county"
        )
        death = cdm_select(
            "death",
            {
                "person_id": "person_id",
                "death_date": "CAST(death_ts AS DATE)",
                "death_datetime": "death_ts",
                "death_type_concept_id": str(EHR),
                "cause_concept_id": "0",
                "cause_source_concept_id": "0",
            },
        )
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.out_death AS SELECT {death} FROM {S}.new_person "
            "WHERE death_ts IS NOT NULL"
        )

    def _organizations(self) -> None:
        self._validate("organizations", self._id_rules("Id"), dup_key="id")
        base = self.bases["care_site"]
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.org AS SELECT id, hash(id) AS key, name, "
            f"{base} + row_number() OVER (ORDER BY _line) AS care_site_id "
            f"FROM {self._valid('organizations')}"
        )
        select = cdm_select(
            "care_site",
            {
                "care_site_id": "care_site_id",
                "care_site_name": "name",
                "place_of_service_concept_id": "0",
                "care_site_source_value": "id",
            },
        )
        self.engine.run(f"CREATE OR REPLACE VIEW {S}.out_care_site AS SELECT {select} FROM {S}.org")

    def _orphan(self, label: str, column: str, found: str, tested: str = "") -> Rule:
        """A reference that the joined table (``found`` from it) does not resolve
        (``tested``: the column tested, when not ``column`` itself, such as its hash)."""
        return Rule(
            label,
            f"{tested or column} IS NOT NULL AND {found} IS NULL",
            f"'{label} ' || {quote_value(column)} || ' not found in the "
            f"{label.lower()} file (or set aside there)'",
        )

    def _providers(self) -> None:
        rules = self._id_rules("Id")
        if "organizations" in self.present:
            rules.append(self._orphan("ORGANIZATION", "organization", "care_site_id"))
        self._validate(
            "providers",
            rules,
            typed={"care_site_id": "o.care_site_id"},
            joins=f"LEFT JOIN {S}.org o ON o.id = t.organization",
            dup_key="id",
        )
        base = self.bases["provider"]
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.prov AS SELECT p.*, hash(p.id) AS key, "
            f"{base} + row_number() OVER (ORDER BY p._line) AS provider_id "
            f"FROM {self._valid('providers')} p"
        )
        select = cdm_select(
            "provider",
            {
                "provider_id": "provider_id",
                "provider_name": "name",
                "specialty_concept_id": "0",
                "care_site_id": "care_site_id",
                "gender_concept_id": "CASE upper(gender) WHEN 'M' THEN 8507 "
                "WHEN 'F' THEN 8532 ELSE 0 END",
                "provider_source_value": "id",
                "specialty_source_value": "speciality",
                "specialty_source_concept_id": "0",
                "gender_source_value": "gender",
                "gender_source_concept_id": "0",
            },
        )
        self.engine.run(f"CREATE OR REPLACE VIEW {S}.out_provider AS SELECT {select} FROM {S}.prov")

    # --- encounters → visits ----------------------------------------------------------

    # --- insurance ------------------------------------------------------------------

    def _payers(self) -> None:
        """payers.csv names the plans; payer_transitions.csv → payer_plan_period, as
        ETL-Synthea: one period per transition, payer id as payer_source_value, the payer's
        name as plan_source_value, concepts 0 (Synthea's payers have no standard codes)."""
        self._validate("payers", self._id_rules("Id"), dup_key="id")
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.payer AS SELECT id, name FROM {self._valid('payers')}"
        )
        rules = [
            *self._person_rules(),
            Rule("PAYER", blank("payer"), "'missing payer'"),
        ]
        if "payers" in self.present:
            rules.append(
                Rule(
                    "PAYER",
                    "payer_id IS NULL",
                    f"'PAYER ' || {quote_value('payer')} || ' not found in payers "
                    "(or set aside there)'",
                )
            )
        rules += [
            Rule("START_YEAR", "start_raw IS NULL", "'missing'"),
            Rule(
                "START_YEAR",
                "start_raw IS NOT NULL AND start_ts IS NULL",
                "'not a valid date or year: ' || left(start_raw, 40)",
            ),
            Rule(
                "START_YEAR",
                f"start_ts > TIMESTAMP {literal(self.now)}",
                "'date in the future: ' || left(start_raw, 40)",
            ),
            Rule("END_YEAR", "end_raw IS NULL", "'missing'"),
            Rule(
                "END_YEAR",
                "end_raw IS NOT NULL AND end_ts IS NULL",
                "'not a valid date or year: ' || left(end_raw, 40)",
            ),
            Rule("END_YEAR", "end_ts < start_ts", "'END before START'"),
        ]

        def period(raw: str, *, end: bool) -> str:
            # a bare year is its first (start) or last (end) day, as ETL-Synthea reads it
            day = "12, 31" if end else "1, 1"
            return (
                f"CASE WHEN regexp_full_match(trim({raw}), '[0-9]{{4}}') THEN "
                f"CAST(make_date(CAST(trim({raw}) AS INTEGER), {day}) AS TIMESTAMP) "
                f"ELSE pmhub_ts({raw}) END"
            )

        start_raw = "coalesce(t.start_date, t.start_year)"
        end_raw = "coalesce(t.end_date, t.end_year)"
        self._validate(
            "payer_transitions",
            rules,
            typed={
                "person_id": "pi.person_id",
                "payer_id": "py.id",
                "plan_name": "coalesce(py.name, t.payer_name)",
                "start_raw": start_raw,
                "end_raw": end_raw,
                "start_ts": period(start_raw, end=False),
                "end_ts": period(end_raw, end=True),
            },
            joins=(
                f"LEFT JOIN {S}.person_ids pi ON pi.source_id = t.patient "
                f"LEFT JOIN {S}.payer py ON py.id = t.payer"
            ),
        )
        base = self.bases["payer_plan_period"]
        select = cdm_select(
            "payer_plan_period",
            {
                "payer_plan_period_id": f"CAST({base} + _line - 1 AS BIGINT)",
                "person_id": "person_id",
                "payer_plan_period_start_date": "CAST(start_ts AS DATE)",
                "payer_plan_period_end_date": "CAST(end_ts AS DATE)",
                "payer_concept_id": "0",
                "payer_source_value": "payer",
                "payer_source_concept_id": "0",
                "plan_concept_id": "0",
                "plan_source_value": "plan_name",
                "plan_source_concept_id": "0",
                "sponsor_concept_id": "0",
                "sponsor_source_concept_id": "0",
                "stop_reason_concept_id": "0",
                "stop_reason_source_concept_id": "0",
            },
        )
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.out_payer_plan_period AS SELECT {select} "
            f"FROM {self._valid('payer_transitions')}"
        )

    def _person_rules(self, patient: str = "patient") -> list[Rule]:
        return [
            Rule("PATIENT", f"{patient} IS NULL", "'missing patient'"),
            Rule(
                "PATIENT",
                "person_id IS NULL",
                f"'PATIENT ' || {quote_value('patient')} || ' not found in patients "
                "nor in earlier loads (or set aside there)'",
            ),
        ]

    def _encounters(self) -> None:
        """``v_encounters`` and the valid encounters (``enc``). Staged with their person,
        provider and organization ids hashed (``HASHED``), they are joined by the hashes;
        with any row set aside, or hashes that repeat, staged again with the texts."""
        hashed = self._hashed("encounters", joinable=self._hashed_keys())
        h = "_h" if hashed else ""
        rules = [
            *self._id_rules("Id"),
            *self._person_rules(f"patient{h}"),
            *self._date_rules("START", "start", "start_ts", required=True),
            *self._date_rules("STOP", "stop", "stop_raw_ts", required=False),
            Rule("STOP", "stop_raw_ts < start_ts", "'STOP before START'"),
        ]
        if "organizations" in self.present:
            rules.append(
                self._orphan("ORGANIZATION", "organization", "care_site_id", f"organization{h}")
            )
        if "providers" in self.present:
            rules.append(self._orphan("PROVIDER", "provider", "provider_id", f"provider{h}"))
        typed = {
            "id": "t.id",
            "person_id": "pi.person_id",
            "class": "lower(trim(t.encounterclass))",
            "start_ts": "pmhub_ts(t.start)",
            "stop_raw_ts": "pmhub_ts(t.stop)",
            "provider_id": "pr.provider_id",
            "care_site_id": "o.care_site_id",
            # the encounter's patient, for its events to be checked against (a 64-bit
            # hash: comparing it is cheaper than looking each event's patient up)
            "patient_hash": "t.patient_h" if hashed else "hash(t.patient)",
        }
        if hashed:
            joins = (
                f"LEFT JOIN {S}.person_keys pi ON pi.key = t.patient_h "
                f"LEFT JOIN {S}.prov pr ON pr.key = t.provider_h "
                f"LEFT JOIN {S}.org o ON o.key = t.organization_h"
            )
        else:
            joins = (
                f"LEFT JOIN {S}.person_ids pi ON pi.source_id = t.patient "
                f"LEFT JOIN {S}.prov pr ON pr.id = t.provider "
                f"LEFT JOIN {S}.org o ON o.id = t.organization"
            )
        self._validate(
            "encounters",
            rules,
            typed=typed,
            joins=joins,
            dup_key="id",
            narrow=True,
            quarantine=not hashed,
        )
        if hashed and self._set_aside("encounters"):
            self._restage("encounters")  # rows set aside: their reasons quote the ids
            self._encounters()
            return
        self._free("encounters")
        # a view, not a copy: the valid encounters are read four times, each cheaply
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.enc AS SELECT id, _line, person_id, class, start_ts, "
            "coalesce(stop_raw_ts, start_ts) AS stop_ts, provider_id, care_site_id, "
            f"patient_hash FROM {self._valid('encounters')}"
        )

    def _visits(self) -> None:
        e = self.engine
        # Inpatient stays: a new stay starts when an admission begins more than one day
        # after every earlier inpatient encounter of the patient has ended.
        e.run(
            f"CREATE OR REPLACE TABLE {S}.ip AS WITH ordered AS (SELECT *, "
            "CASE WHEN CAST(start_ts AS DATE) <= max(CAST(stop_ts AS DATE)) OVER (PARTITION BY "
            "person_id ORDER BY start_ts, stop_ts, _line ROWS BETWEEN UNBOUNDED PRECEDING AND "
            "1 PRECEDING) + 1 THEN 0 ELSE 1 END AS new_stay "
            f"FROM {S}.enc WHERE class = 'inpatient'), grouped AS (SELECT *, sum(new_stay) "
            "OVER (PARTITION BY person_id ORDER BY start_ts, stop_ts, _line ROWS UNBOUNDED "
            "PRECEDING) AS stay FROM ordered) "
            "SELECT person_id, stay, min(start_ts) AS start_ts, max(stop_ts) AS stop_ts, "
            "min(_line) AS first_line FROM grouped GROUP BY person_id, stay"
        )
        # Every encounter's visit: its stay if it starts within one, else its own.
        # (Encounters are keyed by their line from here on: integers join faster than ids.)
        e.run(
            f"CREATE OR REPLACE TABLE {S}.enc_stay AS SELECT en._line, "
            "min(ip.first_line) AS stay_line "
            f"FROM {S}.enc en JOIN {S}.ip ON ip.person_id = en.person_id "
            "AND en.start_ts >= ip.start_ts AND en.start_ts <= ip.stop_ts GROUP BY en._line"
        )
        # Outside stays, ETL-Synthea's rule: a patient's emergency, urgent-care and
        # outpatient encounters of one class that start the same day are one visit (its
        # first encounter's line); other classes are a visit each. (Grouped, not windowed:
        # a window over every encounter costs twice as much.) Only the days with more than
        # one such encounter are kept (a few hundred in 1.9 M encounters): the encounters'
        # join to them then builds a small table, not one as large as the encounters.
        merged = ", ".join(literal(c) for c in SAME_DAY_CLASSES)
        e.run(
            f"CREATE OR REPLACE TABLE {S}.day_unit AS SELECT en.person_id, en.class, "
            "CAST(en.start_ts AS DATE) AS day, min(en._line) AS vline, "
            "min(en.start_ts) AS start_ts, max(en.stop_ts) AS stop_ts "
            f"FROM {S}.enc en ANTI JOIN {S}.enc_stay st ON st._line = en._line "
            f"WHERE en.class IN ({merged}) GROUP BY ALL HAVING count(*) > 1"
        )
        base_vo = self.bases["visit_occurrence"]
        base_vd = self.bases["visit_detail"]
        # a visit's id is the line of its first encounter: unique, no sort needed; an
        # encounter in no stay and no same-day group (``single``) is a visit by itself
        e.run(
            f"CREATE OR REPLACE TABLE {S}.enc_visit AS SELECT en.*, hash(en.id) AS id_key, "
            f"CAST({base_vo} + "
            "coalesce(st.stay_line, du.vline, en._line) - 1 AS BIGINT) AS visit_occurrence_id, "
            f"CAST({base_vd} + en._line - 1 AS BIGINT) AS visit_detail_id, "
            "st.stay_line IS NULL AND du.vline IS NULL AS single "
            f"FROM {S}.enc en LEFT JOIN {S}.enc_stay st ON st._line = en._line "
            f"LEFT JOIN {S}.day_unit du ON du.person_id = en.person_id AND du.class = en.class "
            "AND du.day = CAST(en.start_ts AS DATE)"
        )
        # its source value, provider and care site are its first encounter's; its
        # preceding visit is the person's visit before it (by start, then id), found on
        # the narrow units before the wide join (a window at publish, over every column
        # and joined back, costs twice as much)
        # a view: read once, when visit_occurrence is published (a copy costs a pass)
        e.run(
            f"CREATE OR REPLACE VIEW {S}.visit AS WITH units AS ("
            f"SELECT first_line AS vline, person_id, start_ts, stop_ts, 'inpatient' AS class "
            f"FROM {S}.ip UNION ALL SELECT vline, person_id, start_ts, stop_ts, class "
            f"FROM {S}.day_unit UNION ALL SELECT _line, person_id, start_ts, stop_ts, class "
            f"FROM {S}.enc_visit WHERE single), "
            "ordered AS (SELECT *, lag(vline) OVER (PARTITION BY person_id "
            "ORDER BY start_ts, vline) AS prev FROM units) "
            "SELECT u.vline, u.person_id, u.start_ts, u.stop_ts, u.class, f.id AS source, "
            "f.provider_id, f.care_site_id, "
            f"CAST({base_vo} + u.vline - 1 AS BIGINT) AS visit_occurrence_id, "
            f"CAST({base_vo} + u.prev - 1 AS BIGINT) AS preceding "
            f"FROM ordered u JOIN {S}.enc f ON f._line = u.vline"
        )
        concept = (
            "CASE {c} WHEN 'inpatient' THEN 9201 WHEN 'emergency' THEN 9203 "
            "WHEN 'urgent' THEN 9203 WHEN 'urgentcare' THEN 9203 WHEN 'ambulatory' THEN 9202 "
            "WHEN 'wellness' THEN 9202 WHEN 'outpatient' THEN 9202 ELSE 0 END"
        )
        vo = cdm_select(
            "visit_occurrence",
            {
                "visit_occurrence_id": "v.visit_occurrence_id",
                "person_id": "v.person_id",
                "visit_concept_id": concept.format(c="v.class"),
                "visit_start_date": "CAST(v.start_ts AS DATE)",
                "visit_start_datetime": "v.start_ts",
                "visit_end_date": "CAST(v.stop_ts AS DATE)",
                "visit_end_datetime": "v.stop_ts",
                "visit_type_concept_id": str(EHR_ENCOUNTER),
                "provider_id": "v.provider_id",
                "care_site_id": "v.care_site_id",
                "visit_source_value": "v.source",
                "visit_source_concept_id": "0",
                "admitted_from_concept_id": "0",
                "discharged_to_concept_id": "0",
                "preceding_visit_occurrence_id": "v.preceding",
            },
        )
        e.run(f"CREATE OR REPLACE VIEW {S}.out_visit_occurrence AS SELECT {vo} FROM {S}.visit v")
        vd = cdm_select(
            "visit_detail",
            {
                "visit_detail_id": "visit_detail_id",
                "person_id": "person_id",
                "visit_detail_concept_id": concept.format(c="class"),
                "visit_detail_start_date": "CAST(start_ts AS DATE)",
                "visit_detail_start_datetime": "start_ts",
                "visit_detail_end_date": "CAST(stop_ts AS DATE)",
                "visit_detail_end_datetime": "stop_ts",
                "visit_detail_type_concept_id": str(EHR_ENCOUNTER),
                "provider_id": "provider_id",
                "care_site_id": "care_site_id",
                "visit_detail_source_value": "id",
                "visit_detail_source_concept_id": "0",
                "admitted_from_concept_id": "0",
                "discharged_to_concept_id": "0",
                "preceding_visit_detail_id": "p.preceding",
                "visit_occurrence_id": "visit_occurrence_id",
            },
        )
        e.run(
            f"CREATE OR REPLACE VIEW {S}.out_visit_detail AS SELECT {vd} FROM {S}.enc_visit d "
            "JOIN (SELECT visit_detail_id AS pid, lag(visit_detail_id) OVER (PARTITION BY "
            f"person_id ORDER BY start_ts, visit_detail_id) AS preceding FROM {S}.enc_visit) p "
            "ON p.pid = d.visit_detail_id"
        )

    # --- clinical events ---------------------------------------------------------------

    def _event_rules(self, start: str, *, has_stop: bool, hashed: bool = False) -> list[Rule]:
        """An event's rules; on a hashed stage (``HASHED``) they test the ids' hashes, and
        their reasons, which quote the ids, are never spelt out."""
        patient, encounter = ("patient_h", "encounter_h") if hashed else ("patient", "encounter")
        rules = [
            *self._person_rules(patient),
            Rule(
                "PATIENT",
                "other_patient",
                f"'PATIENT ' || {quote_value('patient')} || ' is not the patient of ENCOUNTER ' "
                f"|| {quote_value('encounter')}",
            ),
            Rule(
                "ENCOUNTER",
                f"{encounter} IS NOT NULL AND visit_occurrence_id IS NULL",
                f"'ENCOUNTER ' || {quote_value('encounter')} || ' not found in encounters "
                "(or set aside there)'",
            ),
            # (``code_blank`` and ``code_long`` come from the file's code map, ``cm_<file>``)
            Rule("CODE", "code IS NULL OR code_blank", "'missing code'"),
            Rule("CODE", "code_long", "'code longer than 50 characters'"),
            *self._date_rules(start.upper(), start, "start_ts", required=True),
        ]
        if has_stop:
            rules += [
                *self._date_rules("STOP", "stop", "stop_ts", required=False),
                Rule("STOP", "stop_ts < start_ts", f"'STOP before {start.upper()}'"),
            ]
        return rules

    def _events(self) -> None:
        self._encounters_by_hash = not self._encounter_hashes_repeat()
        self._map_event_codes()
        for name in EVENT_FILES:
            self._validate_events(name)
        self._route()
        for target in EVENT_TABLES:
            self._event_table(target)

    def _encounter_join(self, *, hashed: bool = False) -> str:
        """How events find their encounter: by the 64-bit hash of its id (staged as such,
        ``hashed``, or hashed here), since an integer key joins in two thirds of the time
        a 36-character text does. Valid encounters' ids are unique, so while no two of
        their hashes are equal (``_encounters_by_hash``) each event matches at most one;
        else (never seen) the ids themselves are joined. An event whose encounter is not
        in the file could match another's hash only by a chance of n in 2^64, and would
        then be set aside as not of that encounter's patient."""
        if not self._encounters_by_hash:
            return "ev.id = t.encounter"
        return "ev.id_key = t.encounter_h" if hashed else "ev.id_key = hash(t.encounter)"

    def _encounter_hashes_repeat(self) -> bool:
        """Whether two valid encounters' ids have one hash: only ids whose hash repeats
        among all the file's ids (``rep_encounters``, from the duplicate check) can."""
        sql = (
            f"SELECT count(*) - count(DISTINCT id_key) FROM {S}.enc_visit "
            f"WHERE id_key IN (SELECT h FROM {S}.rep_encounters)"
        )
        return bool(self.engine.scalar(sql))

    def _map_event_codes(self) -> None:
        """``code_map`` and ``unit_map`` for every code and unit the event files hold, and
        per file ``cm_<file>``: each distinct raw code (and system) with its checks and its
        first target, so that validation maps, checks and routes each row by one join on
        the code as written (no trimming, vocabulary choice or domain test per row)."""
        # the distinct raw codes first (and systems, where the vocabulary depends on it;
        # and units, in the same scan), then their vocabulary and trimmed code: a few
        # hundred rows, not every event (a code over 50 characters is set aside by
        # validation: not looked up)
        codes: list[str] = []
        units: list[str] = []
        for n in EVENT_FILES:
            vocabulary, _, unit, _, _ = _EVENT_COLUMNS[n]
            columns = _code_keys(n) + ([unit.removeprefix("t.")] if unit != "NULL" else [])
            self.engine.run(
                f"CREATE OR REPLACE TABLE {S}.codes_{n} AS SELECT DISTINCT {', '.join(columns)} "
                f"FROM {S}.{n}"
            )
            codes.append(
                f"SELECT DISTINCT {vocabulary} AS vocabulary_id, trim(t.code) AS code "
                f"FROM {S}.codes_{n} t WHERE length(t.code) <= 50"
            )
            if unit != "NULL":
                units.append(
                    f"SELECT DISTINCT 'UCUM', CAST({unit} AS VARCHAR) FROM {S}.codes_{n} t "
                    f"WHERE {unit} IS NOT NULL"
                )
        map_codes(self.engine, " UNION ".join(codes + units))
        self.engine.run(
            f"CREATE OR REPLACE TABLE {S}.unit_map AS SELECT code, min(concept_id) AS concept_id "
            f"FROM {S}.code_map WHERE vocabulary_id = 'UCUM' AND concept_id <> 0 GROUP BY code"
        )
        self.targets_per_code = int(
            self.engine.scalar(f"SELECT coalesce(max(target_rank), 0) + 1 FROM {S}.code_map")
        )
        for n in EVENT_FILES:
            vocabulary = _EVENT_COLUMNS[n][0]
            keys = ", ".join(f"t.{k}" for k in _code_keys(n))
            # (``code`` is NULL for a code over 50 characters: it is not looked up)
            self.engine.run(
                f"CREATE OR REPLACE TABLE {S}.cm_{n} AS SELECT {keys}, "
                f"{blank('t.code')} AS blank, "
                "length(t.code) > 50 AS long, m.code AS mapped_code, "
                "coalesce(m.source_concept_id, 0) AS source_concept_id, "
                "coalesce(m.concept_id, 0) AS concept_id, "
                f"{_place('m.domain_id')} AS place "
                f"FROM (SELECT DISTINCT {keys} FROM {S}.codes_{n} t) t "
                f"LEFT JOIN {S}.code_map m ON length(t.code) <= 50 "
                f"AND m.vocabulary_id = {vocabulary} AND m.code = trim(t.code) "
                "AND m.target_rank = 0"
            )
            self.engine.run(f"DROP TABLE {S}.codes_{n}")

    def _validate_events(self, name: str) -> None:
        """``v_<name>``: one narrow, typed row per event, its person and visit joined, its
        code mapped (the code's first target) and the CDM table it goes to decided.

        A file staged with its ids hashed (``HASHED``) is joined by those hashes; if any
        of its rows is set aside (whose reason quotes the ids), or if two persons' or
        encounters' ids share a hash, it is staged again with the texts and checked again:
        the same rows are set aside, with the same reasons, as if it had never been
        hashed."""
        hashed = self._hashed(name, joinable=self._hashed_keys() and self._encounters_by_hash)
        start = {"immunizations": "date", "observations": "date"}.get(name, "start")
        if name == "procedures":
            # Synthea 2.x wrote DATE where 3.x writes START
            self.engine.run(f"UPDATE {S}.procedures SET start = coalesce(start, date)")
        has_stop = name not in _NO_STOP
        _, value, units, extra, category = _event_text(name)
        patient_key = "t.patient_h" if hashed else "hash(t.patient)"
        code_match = " AND ".join(
            f"m.{k} = t.{k}" if k == "code" else f"m.{k} IS NOT DISTINCT FROM t.{k}"
            for k in _code_keys(name)
        )
        # The text its CDM row needs is copied as it is (short texts are stored inline, so
        # a copy is cheap; trimming would make new strings): code, value, units, extra.
        typed = {
            # the encounter's person, or, for an event with no encounter found, its
            # patient's (only those rows are looked up by patient)
            "person_id": "coalesce(ev.person_id, pi.person_id)",
            "other_patient": f"ev.patient_hash <> {patient_key}",  # (read by a rule)
            "visit_occurrence_id": "ev.visit_occurrence_id",
            "visit_detail_id": "ev.visit_detail_id",
            "provider_id": "ev.provider_id",
            "start_ts": f"pmhub_ts(t.{start})",
            "stop_ts": "pmhub_ts(t.stop)",
            # parsed once here (the CDM row's value_as_number), not again when published
            "ev_number": f"pmhub_num({value})",
            "ev_code": "m.mapped_code",  # trimmed
            "ev_value": value,
            "ev_units": units,
            "extra": extra,
            "source_concept_id": "coalesce(m.source_concept_id, 0)",
            "concept_id": "coalesce(m.concept_id, 0)",
            "target": _target("m.place", name, value, category),
            "code_blank": "m.blank",  # (read by a rule)
            "code_long": "m.long",  # (read by a rule)
            "unit_concept_id": "coalesce(u.concept_id, 0)",
        }
        # a column that is the same for every row of the file (no stop, no value …) is
        # not stored: the events read it as a constant (:func:`_event_constants`)
        for column in _event_constants(name):
            del typed[column]
        # (an event whose encounter is found has its visit detail: the encounter's text
        # id is not carried through the join)
        if hashed:
            persons = f"{S}.person_keys pi ON pi.key = CASE WHEN ev.visit_detail_id IS NULL "
            persons += "THEN t.patient_h END"
        else:
            persons = f"{S}.person_ids pi ON pi.source_id = CASE WHEN ev.visit_detail_id "
            persons += "IS NULL THEN t.patient END"
        joins = (
            f"LEFT JOIN {S}.enc_visit ev ON {self._encounter_join(hashed=hashed)} "
            f"LEFT JOIN {persons} "
            f"LEFT JOIN {S}.cm_{name} m ON {code_match} "
            f"LEFT JOIN {S}.unit_map u ON u.code = {units}"
        )
        rules = self._event_rules(start, has_stop=has_stop, hashed=hashed) + _finite_rules(name)
        self._validate(
            name,
            rules,
            typed=typed,
            joins=joins,
            narrow=True,
            transient=("other_patient", "code_blank", "code_long"),
            quarantine=not hashed,
        )
        if hashed and self._set_aside(name):
            self._restage(name)  # rows set aside: their reasons quote the ids' texts
            self._validate_events(name)
            return
        if self.targets_per_code == 1:  # (further targets are found from the stage rows)
            self._free(name)

    def _hashed_keys(self) -> bool:
        """Whether rows may find their person, provider and organization by the hashes
        of their ids: no two persons' source ids, nor two valid providers' or
        organizations' ids, share one (checked once; ``person_keys`` holds the persons'
        hashes). Encounters' hashes are checked apart (``rep_encounters``)."""
        if self._keys_unique is None:
            self.engine.run(
                f"CREATE OR REPLACE TABLE {S}.person_keys AS SELECT hash(source_id) AS key, "
                f"person_id FROM {S}.person_ids"
            )
            repeats = self.engine.scalar(
                "SELECT "
                + " + ".join(
                    f"(SELECT count(*) - count(DISTINCT key) FROM {S}.{t})"
                    for t in ("person_keys", "prov", "org")
                )
            )
            self._keys_unique = not repeats
        return self._keys_unique

    def _hashed(self, name: str, *, joinable: bool) -> bool:
        """Whether ``name`` is staged with its ids hashed (``HASHED``) and may be joined by
        them; when they may not (``joinable`` false: two ids share a hash), the file is
        staged again with the texts."""
        if "patient_h" not in self._stage_columns(name):
            return False
        if not joinable:
            self._restage(name)
        return joinable

    def _set_aside(self, name: str) -> int:
        """How many of ``v_<name>``'s rows break a rule."""
        return int(self.engine.scalar(f"SELECT count(*) FROM {S}.v_{name} WHERE _rule IS NOT NULL"))

    def _restage(self, name: str) -> None:
        """Stage a file staged hashed again with its ids' texts (and the columns a file
        may lack)."""
        if self.restage is None:
            raise RuntimeError(f"{name} was staged with hashed ids and cannot be staged again")
        self.restage(name)
        add_missing_columns(self.engine, name, COLUMNS[name])

    def _route(self) -> None:
        """Per CDM table, the valid events that go there: each file's rows of that target
        (their code's first target), and, for codes that map to several concepts, one more
        row per further target. ``routed`` is all of them (the report counts unmapped)."""
        # ids without sorting the events: a row's id is its place in the files read
        # (each file's lines after the lines of the files before it) times the most
        # targets a code has, plus its target's rank; unique, and the same on every run
        spans = dict(
            self.engine.rows(
                " UNION ALL ".join(
                    f"SELECT {order}, coalesce(max(_line), 0) + 1 FROM {S}.v_{name}"
                    for order, name in enumerate(EVENT_FILES)
                )
            )
        )
        offset = 0
        self.line_offsets = {}
        for order in sorted(spans):
            self.line_offsets[int(order)] = offset
            offset += int(spans[order])
        present = self.engine.rows(
            " UNION ALL ".join(
                f"SELECT DISTINCT {literal(name)}, target FROM {S}.v_{name} WHERE _rule IS NULL"
                for name in EVENT_FILES
            )
        )
        self.file_targets = {}
        for name, target in present:
            self.file_targets.setdefault(EVENT_TABLES[int(target)], set()).add(str(name))
        for target in EVENT_TABLES:
            self.engine.run(
                f"CREATE OR REPLACE VIEW {S}.events_{target} AS {self._events_of(target)}"
            )
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.routed AS "
            + " UNION ALL ".join(
                f"SELECT {literal(t)} AS target, concept_id FROM {S}.events_{t}"
                for t in EVENT_TABLES
            )
        )

    def _events_of(self, target: str) -> str:
        """Valid events that go to ``target``, from ``v_<file>`` (``v``); a code's further
        targets come from the stage rows (``t``) with such a code, joined to ``v``."""
        code = EVENT_TABLES.index(target)

        def columns(name: str) -> str:
            fixed = _event_constants(name)

            def stored(column: str, alias: str) -> str:
                return f"{fixed.get(column, f'v.{column}')} AS {alias}"

            return (
                f"{EVENT_FILES.index(name)} AS file_order, {literal(name)} AS file, v._line, "
                "v.person_id, v.visit_occurrence_id, v.visit_detail_id, v.provider_id, "
                f"v.start_ts, {stored('stop_ts', 'stop_ts')}, v.ev_code AS code, "
                f"{stored('ev_value', 'value')}, {stored('ev_number', 'number')}, "
                f"{stored('ev_units', 'units')}, {stored('extra', 'extra')}, "
                f"{stored('unit_concept_id', 'unit_concept_id')}"
            )

        parts = [
            f"SELECT {columns(name)}, v.source_concept_id, v.concept_id, v.target, "
            f"0 AS target_rank FROM {S}.v_{name} v WHERE v._rule IS NULL AND v.target = {code}"
            for name in EVENT_FILES
            if name in self.file_targets.get(target, set())
        ]
        if self.targets_per_code > 1:  # codes with several targets: their further rows
            for name in EVENT_FILES:
                vocabulary, value, _, _, category = _event_text(name)
                routed = _target(_place("m.domain_id"), name, value, category)
                # the few stage rows whose code has further targets, then their typed values
                parts.append(
                    f"SELECT * FROM (SELECT {columns(name)}, m.source_concept_id, "
                    f"m.concept_id, {routed} AS target, m.target_rank FROM {S}.{name} t "
                    f"JOIN {S}.code_map m ON m.vocabulary_id = {vocabulary} "
                    "AND m.code = trim(t.code) AND m.target_rank > 0 "
                    f"JOIN {S}.v_{name} v ON v._line = t._line WHERE v._rule IS NULL) "
                    f"WHERE target = {code}"
                )
        if not parts:  # no event goes there: an empty relation of the same shape
            parts = [
                f"SELECT {columns(EVENT_FILES[0])}, v.source_concept_id, v.concept_id, "
                f"v.target, 0 AS target_rank FROM {S}.v_{EVENT_FILES[0]} v WHERE false"
            ]
        return " UNION ALL ".join(parts)

    def _event_table(self, target: str) -> None:
        prefix = {
            "condition_occurrence": "condition",
            "drug_exposure": "drug",
            "procedure_occurrence": "procedure",
            "measurement": "measurement",
            "observation": "observation",
            "device_exposure": "device",
        }[target]
        base = self.bases[target]
        offsets = (
            "CASE file_order "
            + " ".join(f"WHEN {order} THEN {start}" for order, start in self.line_offsets.items())
            + " END"
            if self.line_offsets
            else "0"
        )
        id_col = f"{target}_id" if target != "condition_occurrence" else "condition_occurrence_id"
        type_concept = (
            f"CASE file WHEN 'medications' THEN {EHR_PRESCRIPTION} "
            f"WHEN 'immunizations' THEN {EHR_ENCOUNTER} ELSE {EHR} END"
        )
        exprs = {
            id_col: f"{base} + ({offsets} + _line) * {self.targets_per_code} + target_rank",
            "person_id": "person_id",
            f"{prefix}_concept_id": "concept_id",
            f"{prefix}_type_concept_id": type_concept,
            "provider_id": "provider_id",
            "visit_occurrence_id": "visit_occurrence_id",
            "visit_detail_id": "visit_detail_id",
            f"{prefix}_source_value": "code",
            f"{prefix}_source_concept_id": "source_concept_id",
        }
        exprs.update(_dates(target, prefix))
        exprs.update(_values(target))
        select = cdm_select(target, exprs)
        self.engine.run(
            f"CREATE OR REPLACE VIEW {S}.out_{target} AS SELECT {select} FROM {S}.events_{target}"
        )


def _event_constants(name: str) -> dict[str, str]:
    """The columns of an event file's validated rows that are the same for every row
    (a file with no STOP, VALUE, UNITS or extra column), as typed constants."""
    _, value, units, extra, _ = _EVENT_COLUMNS[name]
    fixed = {}
    if name in _NO_STOP:
        fixed["stop_ts"] = "CAST(NULL AS TIMESTAMP)"
    if value == "NULL":
        fixed.update(ev_value="CAST(NULL AS VARCHAR)", ev_number="CAST(NULL AS DOUBLE)")
    if units == "NULL":
        fixed.update(ev_units="CAST(NULL AS VARCHAR)", unit_concept_id="CAST(0 AS INTEGER)")
    if extra == "NULL":
        fixed["extra"] = "CAST(NULL AS VARCHAR)"
    return fixed


def _finite_rules(name: str) -> list[Rule]:
    """NaN, Infinity and 1e999 parse as numbers (DuckDB's cast takes them): an event
    whose value or quantity is such a number is set aside, never loaded as a value that
    would make every statistic of its concept NaN."""
    rules = []
    if _EVENT_COLUMNS[name][1] != "NULL":  # (a file with a VALUE column)
        rules.append(
            Rule(
                "VALUE",
                "NOT isfinite(ev_number)",
                f"'not a finite number: ' || {quote_value('value')}",
            )
        )
    if name == "medications":
        rules.append(
            Rule(
                "DISPENSES",
                "NOT isfinite(pmhub_num(extra))",
                f"'not a finite number: ' || {quote_value('extra')}",
            )
        )
    return rules


def _event_text(name: str) -> tuple[str, str, str, str, str]:
    """An event file's vocabulary, value, units, extra and category, as text expressions
    on its stage row ``t``."""
    vocabulary, *texts = _EVENT_COLUMNS[name]
    value, units, extra, category = (f"CAST({x} AS VARCHAR)" for x in texts)
    return vocabulary, value, units, extra, category


def _code_keys(name: str) -> list[str]:
    """The stage columns an event file's codes are looked up by: the code, and its
    system where the file has one (the vocabulary depends on it)."""
    return ["system", "code"] if "system" in COLUMNS[name] else ["code"]


def _place(domain: str) -> str:
    """The CDM table a concept's domain (``domain``, an expression) sends an event to, as
    its place in EVENT_TABLES; NULL for a domain with no table of its own."""
    by_domain = " ".join(
        f"WHEN {literal(d)} THEN {EVENT_TABLES.index(t)}" for d, t in DOMAIN_TABLE.items()
    )
    return f"CAST(CASE {domain} {by_domain} END AS UTINYINT)"


def _target(place: str, name: str, value: str, category: str) -> str:
    """The CDM table of an event, as its place in EVENT_TABLES: its concept's domain's
    (``place``, from :func:`_place`), else its file's (an observation with a number, or
    of a vital-sign or laboratory category, is a measurement)."""
    default = {
        "conditions": "condition_occurrence",
        "medications": "drug_exposure",
        "immunizations": "drug_exposure",
        "procedures": "procedure_occurrence",
        "devices": "device_exposure",
        "allergies": "observation",
    }.get(name)
    measurement, observation = EVENT_TABLES.index("measurement"), EVENT_TABLES.index("observation")
    otherwise = (
        str(EVENT_TABLES.index(default))
        if default is not None
        else f"CASE WHEN pmhub_num({value}) IS NOT NULL OR lower({category}) IN "
        f"('vital-signs', 'laboratory') THEN {measurement} ELSE {observation} END"
    )
    return f"CAST(coalesce({place}, {otherwise}) AS UTINYINT)"


def _dates(target: str, prefix: str) -> dict[str, str]:
    start, stop = "CAST(start_ts AS DATE)", "CAST(stop_ts AS DATE)"
    if target == "drug_exposure":
        return {
            "drug_exposure_start_date": start,
            "drug_exposure_start_datetime": "start_ts",
            "drug_exposure_end_date": f"coalesce({stop}, {start})",
            "drug_exposure_end_datetime": "coalesce(stop_ts, start_ts)",
            "verbatim_end_date": stop,
            "days_supply": f"CASE WHEN stop_ts IS NOT NULL THEN {stop} - {start} END",
        }
    if target == "procedure_occurrence":
        return {
            "procedure_date": start,
            "procedure_datetime": "start_ts",
            "procedure_end_date": stop,
            "procedure_end_datetime": "stop_ts",
        }
    if target in ("measurement", "observation"):
        return {f"{prefix}_date": start, f"{prefix}_datetime": "start_ts"}
    dated = "device_exposure" if target == "device_exposure" else prefix
    return {
        f"{dated}_start_date": start,
        f"{dated}_start_datetime": "start_ts",
        f"{dated}_end_date": stop,
        f"{dated}_end_datetime": "stop_ts",
    }


def _values(target: str) -> dict[str, str]:
    if target == "measurement":
        return {
            "value_as_number": "number",
            "unit_concept_id": "unit_concept_id",
            "unit_source_value": "units",
            "value_source_value": "value",
        }
    if target == "observation":
        return {
            "value_as_number": "number",
            "value_as_string": "CASE WHEN number IS NULL THEN value END",
            "unit_concept_id": "unit_concept_id",
            "unit_source_value": "units",
            "value_source_value": "value",
        }
    if target == "drug_exposure":
        return {"quantity": "pmhub_num(extra)"}
    if target == "device_exposure":
        return {"unique_device_id": "extra"}
    return {}
