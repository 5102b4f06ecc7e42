"""Ground truth: who is who across hospitals, and the true risks behind the records.

Files (folder ``ground_truth/``):
- ``patients.csv``: every simulated person with their real identity.
- ``linkage.csv``: the person_id and record number of each person at each hospital.
- ``risk_models.json``: the parameters of every risk model (risk_models.yaml as data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pmhub.synth import refdata
from pmhub.synth.chunk import Chunk
from pmhub.synth.config import SynthConfig

FOLDER = "ground_truth"
PATIENT_COLUMNS = (
    "patient_key",
    "family_name",
    "given_name",
    "sex",
    "birth_date",
    "death_date",
    "rrn",
    "region_code",
    "foreign",
)
LINKAGE_COLUMNS = ("patient_key", "site", "person_id", "mrn")


def index_years(config: SynthConfig) -> tuple[int, ...]:
    return ()


def headers() -> dict[str, bytes]:
    from pmhub.synth.output import header

    return {
        f"{FOLDER}/patients.csv": header(PATIENT_COLUMNS),
        f"{FOLDER}/linkage.csv": header(LINKAGE_COLUMNS),
    }


def render(chunk: Chunk, config: SynthConfig) -> dict[str, bytes]:
    from pmhub.synth.output import csv_bytes

    return {
        f"{FOLDER}/patients.csv": csv_bytes(patients(chunk, config)),
        f"{FOLDER}/linkage.csv": csv_bytes(linkage(chunk, config)),
    }


def patients(chunk: Chunk, config: SynthConfig) -> pa.Table:
    s = chunk.state
    regs = refdata.regions()
    end = (np.datetime64(config.end_date) - np.datetime64("1970-01-01")).astype(np.int64)
    died = s.death <= end
    return pa.table(
        {
            "patient_key": pa.array(s.key),
            "family_name": pa.array(chunk.people["family"].tolist(), pa.string()),
            "given_name": pa.array(chunk.people["given"].tolist(), pa.string()),
            "sex": pa.array(np.where(s.male, "M", "F").tolist(), pa.string()),
            "birth_date": pa.array(s.birth.astype(np.int32), pa.date32()),
            "death_date": pa.array(
                np.where(died, s.death, 0).astype(np.int32), pa.date32(), mask=~died
            ),
            "rrn": pa.array(chunk.people["rrn"].tolist(), pa.string()),
            "region_code": pa.array([regs[r].code for r in s.region.tolist()], pa.string()),
            "foreign": pa.array(s.foreign),
        }
    )


def linkage(chunk: Chunk, config: SynthConfig) -> pa.Table:
    person, site = np.nonzero(chunk.site_person > 0)
    names = [spec.name for spec in refdata.sites()[: config.sites]]
    return pa.table(
        {
            "patient_key": pa.array(chunk.state.key[person]),
            "site": pa.array([names[x] for x in site.tolist()], pa.string()),
            "person_id": pa.array(chunk.site_person[person, site]),
            "mrn": pa.array(chunk.mrn[person, site].tolist(), pa.string()),
        }
    )


def finish(folder: Path, config: SynthConfig) -> dict[str, Any]:
    out = folder / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    (out / "risk_models.json").write_text(
        json.dumps(refdata.risk_models(), ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return {}
