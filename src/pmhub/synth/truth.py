"""Ground truth: who is who across hospitals, and the true risks behind the records.

Files (folder ``ground_truth/``):
- ``patients.csv``: every simulated person with their real identity.
- ``linkage.csv``: the person_id and record number of each person at each hospital.
- ``risk_models.json``: the parameters of every risk model (risk_models.yaml as data).
- ``task_<name>.csv``: for each standard prediction task, every person of its cohort
  with the true annual hazard at the index date, the true risk over the horizon, the
  realised outcome and the true covariates (see :data:`TASKS`).
- ``summary.json``: per task the cohort size, events, and the best achievable AUROC.

The true risk is what the simulation itself implies, found by Monte Carlo: each cohort
member's state at the index date is replicated ``REPLICATES`` times and the same yearly
step (same risk models, same population norms, competing death included) is run over the
horizon; the risk is the share of replicates with the outcome. No model can do better in
expectation than ranking by it, so ``expected_auroc`` (the AUROC of the true risks against
outcomes drawn from them) is the best achievable AUROC; ``auroc_true_risk`` is the same
ranking scored on the realised outcomes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pmhub.synth import params as pm
from pmhub.synth import refdata
from pmhub.synth.chunk import Chunk, network, year_days
from pmhub.synth.config import SynthConfig
from pmhub.synth.model import K_EVENT, NEVER, TCOL, Arr, cha2ds2_vasc
from pmhub.synth.step import step

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


@dataclass(frozen=True)
class Task:
    name: str
    condition: str  # cohort: people with this condition (STATES name) at the index date
    outcome: str  # acute event (EVENTS name)
    horizon: int  # years
    replicates: int
    description: str

    def index_year(self, config: SynthConfig) -> int:
        return max(config.years - self.horizon, 0)

    def span(self, config: SynthConfig) -> int:
        return min(self.horizon, config.years - self.index_year(config))


TASKS = (
    Task(
        "af_stroke_5y",
        "af",
        "isch_stroke",
        5,
        200,
        "ischaemic stroke within 5 years in atrial fibrillation",
    ),
    Task(
        "t2dm_mi_1y", "t2dm", "mi", 1, 100, "myocardial infarction within 1 year in type 2 diabetes"
    ),
)
TASK_COLUMNS = (
    "patient_key",
    "index_date",
    "horizon_years",
    "age",
    "sex",
    "true_annual_hazard",
    "true_risk",
    "true_risk_se",
    "outcome",
    "outcome_date",
    "died_before_outcome",
    "cha2ds2_vasc",
    "sbp",
    "ldl_mmol",
    "hba1c",
    "egfr",
    "current_smoker",
    "hypertension",
    "t2dm",
    "ckd",
    "hf",
    "mi_history",
    "stroke_history",
    "antihypertensive",
    "statin",
    "metformin",
    "anticoag_warfarin",
    "anticoag_doac",
    "antiplatelet",
)


def index_years(config: SynthConfig) -> tuple[int, ...]:
    return tuple(sorted({t.index_year(config) for t in TASKS}))


def headers() -> dict[str, bytes]:
    from pmhub.synth.output import header

    result = {
        f"{FOLDER}/patients.csv": header(PATIENT_COLUMNS),
        f"{FOLDER}/linkage.csv": header(LINKAGE_COLUMNS),
    }
    for task in TASKS:
        result[f"{FOLDER}/task_{task.name}.csv"] = header(TASK_COLUMNS)
    return result


def render(chunk: Chunk, config: SynthConfig) -> dict[str, bytes]:
    from pmhub.synth.output import csv_bytes

    result: dict[str, bytes] = {
        f"{FOLDER}/patients.csv": csv_bytes(patients(chunk, config)),
        f"{FOLDER}/linkage.csv": csv_bytes(linkage(chunk, config)),
    }
    for task in TASKS:
        result[f"{FOLDER}/task_{task.name}.csv"] = csv_bytes(task_table(chunk, config, task))
    return result


def task_table(chunk: Chunk, config: SynthConfig, task: Task) -> pa.Table:
    """The cohort of a task in one chunk, with true risks and realised outcomes."""
    k = task.index_year(config)
    snap = chunk.snapshots[k]
    assert snap.result is not None
    day0 = year_days(config, k)[0]
    state = snap.state
    col = pm.COLUMN[task.condition]
    cohort = np.flatnonzero((state.death >= day0) & (state.onset[:, col] < day0))
    span = task.span(config)
    end = year_days(config, k + span - 1)[0] + year_days(config, k + span - 1)[1]
    outcome_day = _first_event(chunk, task.outcome, day0, end)[cohort]
    risk, se = monte_carlo(chunk, config, task, cohort)
    x, lat = snap.result.x, snap.result.lat
    age = lat["age"][cohort]
    died = (chunk.state.death[cohort] < np.minimum(outcome_day, end)) & (outcome_day == NEVER)
    has_outcome = outcome_day != NEVER

    def flag(name: str) -> Any:
        return pa.array(x[name][cohort].astype(np.int8))

    def on(treatment: str) -> Any:
        return pa.array((state.treat_since[cohort, TCOL[treatment]] <= day0).astype(np.int8))

    return pa.table(
        {
            "patient_key": pa.array(state.key[cohort]),
            "index_date": pa.array(np.full(len(cohort), day0, dtype=np.int32), pa.date32()),
            "horizon_years": pa.array(np.full(len(cohort), span, dtype=np.int32)),
            "age": pa.array(np.round(age, 2)),
            "sex": pa.array(np.where(state.male[cohort], "M", "F").tolist(), pa.string()),
            "true_annual_hazard": pa.array(np.round(snap.result.hazards[task.outcome][cohort], 8)),
            "true_risk": pa.array(np.round(risk, 6)),
            "true_risk_se": pa.array(np.round(se, 6)),
            "outcome": pa.array(has_outcome.astype(np.int8)),
            "outcome_date": pa.array(
                np.where(has_outcome, outcome_day, 0).astype(np.int32),
                pa.date32(),
                mask=~has_outcome,
            ),
            "died_before_outcome": pa.array(died.astype(np.int8)),
            "cha2ds2_vasc": pa.array(
                cha2ds2_vasc(state, day0, lat["age"], x)[cohort].astype(np.int32)
            ),
            "sbp": pa.array(np.round(lat["sbp"][cohort], 1)),
            "ldl_mmol": pa.array(np.round(lat["ldl"][cohort], 2)),
            "hba1c": pa.array(np.round(lat["hba1c"][cohort], 2)),
            "egfr": pa.array(np.round(lat["egfr"][cohort], 1)),
            "current_smoker": flag("current_smoker"),
            "hypertension": flag("hypertension"),
            "t2dm": flag("t2dm"),
            "ckd": flag("ckd"),
            "hf": flag("hf"),
            "mi_history": flag("mi_history"),
            "stroke_history": flag("stroke_history"),
            "antihypertensive": on("antihypertensive"),
            "statin": on("statin"),
            "metformin": on("metformin"),
            "anticoag_warfarin": flag("anticoag_warfarin"),
            "anticoag_doac": flag("anticoag_doac"),
            "antiplatelet": flag("antiplatelet"),
        }
    )


def _first_event(chunk: Chunk, name: str, start: int, end: int) -> Arr:
    """Day of each person's first ``name`` event in [start, end), NEVER if none."""
    ev = chunk.events
    sel = (ev["what"] == pm.COLUMN[name]) & (ev["day"] >= start) & (ev["day"] < end)
    first = np.full(chunk.state.n, NEVER, dtype=np.int64)
    np.minimum.at(first, ev["person"][sel], ev["day"][sel])
    return first


def monte_carlo(chunk: Chunk, config: SynthConfig, task: Task, cohort: Arr) -> tuple[Arr, Arr]:
    """True risk of the outcome over the horizon for each cohort member, and its MC error."""
    k = task.index_year(config)
    span = task.span(config)
    reps = task.replicates
    if len(cohort) == 0:
        return np.zeros(0), np.zeros(0)
    _, net = network(config)
    seed = np.random.SeedSequence([config.seed, chunk.index, 9_000 + TASKS.index(task)])
    rng = np.random.default_rng(seed)
    state = chunk.snapshots[k].state.take(np.repeat(cohort, reps))
    day0 = year_days(config, k)[0]
    hit = np.zeros(state.n, dtype=bool)
    col = pm.COLUMN[task.outcome]
    for t in range(k, k + span):
        start, ndays = year_days(config, t)
        result = step(state, start, ndays, net, rng, norms=chunk.norms[t])
        log = result.log
        sel = (log["kind"] == K_EVENT) & (log["what"] == col) & (log["day"] >= day0)
        hit[log["person"][sel]] = True
    share = hit.reshape(len(cohort), reps).mean(axis=1)
    se = np.sqrt(share * (1 - share) / reps)
    return share, se


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
    summary = {task.name: summarise(out / f"task_{task.name}.csv", task) for task in TASKS}
    (out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return {"tasks": summary}


def summarise(path: Path, task: Task) -> dict[str, Any]:
    import pyarrow.csv as pacsv

    data = pacsv.read_csv(path)
    risk = data.column("true_risk").to_numpy().astype(float)
    outcome = data.column("outcome").to_numpy().astype(int)
    hazard = data.column("true_annual_hazard").to_numpy().astype(float)
    cha = data.column("cha2ds2_vasc").to_numpy().astype(float)
    return {
        "description": task.description,
        "cohort": len(risk),
        "events": int(outcome.sum()),
        "mean_true_risk": round(float(risk.mean()), 6) if len(risk) else None,
        "expected_auroc": _round(expected_auroc(risk)),
        "auroc_true_risk": _round(auroc(risk, outcome)),
        "auroc_true_annual_hazard": _round(auroc(hazard, outcome)),
        "auroc_cha2ds2_vasc": _round(auroc(cha, outcome)),
        "replicates": task.replicates,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def auroc(score: Arr, outcome: Arr) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes."""
    pos = int(outcome.sum())
    neg = len(outcome) - pos
    if pos == 0 or neg == 0:
        return None
    ranks = _average_ranks(score)
    return float((ranks[outcome == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def expected_auroc(risk: Arr) -> float | None:
    """The AUROC expected when outcomes are drawn from ``risk`` and scored by it: the best
    any model can achieve in expectation."""
    if len(risk) < 2:
        return None
    order = np.argsort(risk, kind="stable")
    p = risk[order]
    q = 1.0 - p
    _, starts = np.unique(p, return_index=True)
    ends = np.append(starts[1:], len(p))
    lower_q = np.concatenate([[0.0], np.cumsum(q)])[starts]  # sum of (1 - p_j) for r_j < r_i
    tie_q = np.array([q[s:e].sum() for s, e in zip(starts, ends, strict=True)])
    tie_p = np.array([p[s:e].sum() for s, e in zip(starts, ends, strict=True)])
    tie_pq = np.array([(p[s:e] * q[s:e]).sum() for s, e in zip(starts, ends, strict=True)])
    # pairs (i positive, j negative), i != j: strictly lower j count 1, tied j count 1/2
    wins = (tie_p * lower_q).sum() + 0.5 * (tie_p * tie_q - tie_pq).sum()
    total = p.sum() * q.sum() - (p * q).sum()
    return float(wins / total) if total > 0 else None


def _average_ranks(score: Arr) -> Arr:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    _, inverse = np.unique(score, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    result: Arr = (sums / counts)[inverse]
    return result
