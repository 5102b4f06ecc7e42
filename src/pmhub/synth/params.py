"""The risk models of ``data/risk_models.yaml`` as vectorised functions of age and covariates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from pmhub.synth import refdata
from pmhub.synth.errors import ReferenceDataError

Arr = npt.NDArray[Any]

CHRONIC = (
    "dyslipidaemia",
    "t2dm",
    "hypertension",
    "ckd",
    "af",
    "hf",
    "copd",
    "asthma",
    "dementia",
    "depression",
)
CV_EVENTS = ("mi", "isch_stroke", "haem_stroke")
CANCERS = ("stomach_ca", "crc", "lung_ca", "liver_ca", "breast_ca", "thyroid_ca")
EVENTS = CV_EVENTS + CANCERS
STATES = CHRONIC + EVENTS  # columns of the onset matrix (first occurrence)
COLUMN = {name: i for i, name in enumerate(STATES)}

COVARIATES = (
    "female",
    "obese",
    "current_smoker",
    "former_smoker",
    "hypertension",
    "t2dm",
    "dyslipidaemia",
    "ckd",
    "af",
    "hf",
    "copd",
    "dementia",
    "depression",
    "mi_history",
    "stroke_history",
    "cancer_active",
    "sbp_per_10",
    "ldl_per_mmol",
    "hba1c_above_7",
    "antiplatelet",
    "anticoag_warfarin",
    "anticoag_doac",
    "metformin",
)
BAND_YEARS = 5
BANDS = 21  # 0-4, 5-9, ..., 100+


def age_band(age: Arr) -> Arr:
    result: Arr = np.clip((age // BAND_YEARS).astype(np.int64), 0, BANDS - 1)
    return result


def _loglinear(ages: Arr, rates: Arr, age: Arr) -> Arr:
    """Rates at ``age`` interpolated log-linearly between the listed ages; constant beyond."""
    safe = np.log(np.maximum(rates, 1e-12))
    result: Arr = np.exp(np.interp(age, ages, safe))
    result[np.interp(age, ages, rates) <= 0] = 0.0
    return result


@dataclass(frozen=True)
class Curve:
    pmax: float
    mid: float
    scale: float

    def prevalence(self, age: Arr) -> Arr:
        result: Arr = self.pmax / (1.0 + np.exp(-(age - self.mid) / self.scale))
        return result

    def hazard(self, age: Arr) -> Arr:
        """Onset hazard that keeps a population on the curve: P'(a) / (1 - P(a))."""
        p = self.prevalence(age)
        derivative = p * (1.0 - p / self.pmax) / self.scale
        result: Arr = derivative / np.maximum(1.0 - p, 1e-6)
        return result


@dataclass(frozen=True)
class ChronicModel:
    name: str
    min_age: float
    curves: tuple[Curve, Curve]  # male, female
    log_hr: dict[str, float]

    def prevalence(self, age: Arr, female: Arr) -> Arr:
        result: Arr = np.where(
            female, self.curves[1].prevalence(age), self.curves[0].prevalence(age)
        )
        return np.where(age >= self.min_age, result, 0.0)

    def hazard(self, age: Arr, female: Arr) -> Arr:
        result: Arr = np.where(female, self.curves[1].hazard(age), self.curves[0].hazard(age))
        return np.where(age >= self.min_age, result, 0.0)


@dataclass(frozen=True)
class RateModel:
    """Baseline rate table by age and sex (per person-year) times exp(score)."""

    name: str
    ages: Arr
    male: Arr  # per person-year
    female: Arr
    log_hr: dict[str, float]
    case_fatality: float = 0.0
    excess_mortality: float = 0.0

    def baseline(self, age: Arr, female: Arr) -> Arr:
        result: Arr = np.where(
            female,
            _loglinear(self.ages, self.female, age),
            _loglinear(self.ages, self.male, age),
        )
        return result


def score(log_hr: dict[str, float], x: dict[str, Arr], n: int) -> Arr:
    total = np.zeros(n)
    for name, beta in log_hr.items():
        total += beta * x[name]
    return total


@dataclass(frozen=True)
class Params:
    chronic: dict[str, ChronicModel]
    events: dict[str, RateModel]
    death: RateModel
    cancer_excess_after_5: float
    raw: dict[str, Any]

    def section(self, *path: str) -> Any:
        node: Any = self.raw
        for key in path:
            node = node[key]
        return node


def _check_covariates(name: str, log_hr: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(log_hr) - set(COVARIATES))
    if unknown:
        raise ReferenceDataError(f"risk model {name} uses unknown covariates {unknown}")
    return {k: float(v) for k, v in log_hr.items()}


def _rate_model(name: str, spec: dict[str, Any]) -> RateModel:
    return RateModel(
        name=name,
        ages=np.array(spec["ages"], dtype=float),
        male=np.array(spec["per_1000"]["M"], dtype=float) / 1000.0,
        female=np.array(spec["per_1000"]["F"], dtype=float) / 1000.0,
        log_hr=_check_covariates(name, spec.get("log_hr") or {}),
        case_fatality=float(spec.get("case_fatality", 0.0)),
        excess_mortality=float(spec.get("excess_mortality", 0.0)),
    )


@cache
def load() -> Params:
    raw = refdata.risk_models()
    try:
        chronic = {
            name: ChronicModel(
                name=name,
                min_age=float(spec["min_age"]),
                curves=(Curve(*spec["curve"]["M"]), Curve(*spec["curve"]["F"])),
                log_hr=_check_covariates(name, spec.get("log_hr") or {}),
            )
            for name, spec in raw["chronic"].items()
        }
        events = {name: _rate_model(name, spec) for name, spec in raw["events"].items()}
        death = _rate_model("death", raw["death"])
        excess = float(raw["death"]["cancer_excess_after_5_years"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceDataError(f"risk_models.yaml is incomplete: {exc!r}") from exc
    if tuple(chronic) != CHRONIC or tuple(events) != EVENTS:
        raise ReferenceDataError("risk_models.yaml lists other conditions than the simulator")
    return Params(chronic, events, death, excess, raw)


def interp_table(table: dict[str, Any], key: str, age: Arr) -> Arr:
    """A step table ``{ages: [...], key: [...]}``: the value of the last age <= ``age``."""
    ages = np.array(table["ages"], dtype=float)
    values = np.array(table[key], dtype=float)
    idx = np.clip(np.searchsorted(ages, age, side="right") - 1, 0, len(ages) - 1)
    result: Arr = values[idx]
    return result
