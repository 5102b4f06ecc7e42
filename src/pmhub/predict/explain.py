"""Explanations: SHAP values in log-odds, global and per patient, with features in words.

Linear models get exact SHAP values (coefficient × (value − its mean over the
background rows), the closed form for independent features); trees get SHAP's
TreeExplainer. Both are on the calibrated log-odds scale (times the recalibration slope).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pmhub.extras import require
from pmhub.predict.covariates import FeatureDictionary
from pmhub.predict.models import Fitted, Matrix


@dataclass(frozen=True)
class Contribution:
    feature: str  # the feature's name in words
    key: str
    shap: float  # log-odds


def shap_values(model: Fitted, x: Matrix, background: Matrix) -> np.ndarray:
    """SHAP values (rows × features) on the calibrated log-odds scale."""
    if model.coef is not None:
        mean = np.asarray(background.mean(axis=0)).ravel()
        dense = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
        return np.asarray((dense - mean) * model.coef * model.scale)
    shap = require("shap")
    explainer = shap.TreeExplainer(model._load_booster())
    dense = x.toarray() if hasattr(x, "toarray") else np.asarray(x)  # at most a few 1000 rows
    with warnings.catch_warnings():
        # SHAP warns that a LightGBM classifier's output is per class; asked for below
        warnings.simplefilter("ignore", UserWarning)
        values = explainer.shap_values(dense)
    if isinstance(values, list):  # one array per class: the positive one
        values = values[-1]
    return np.asarray(values, dtype=float) * model.scale


def global_importance(
    values: np.ndarray, dictionary: FeatureDictionary, top: int = 20
) -> list[Contribution]:
    """Features by mean |SHAP| over the rows explained."""
    mean_abs = np.abs(values).mean(axis=0) if len(values) else np.zeros(len(dictionary))
    order = np.argsort(-mean_abs, kind="stable")[:top]
    return [
        Contribution(dictionary.features[j].name, dictionary.features[j].key, float(mean_abs[j]))
        for j in order
        if mean_abs[j] > 0
    ]


def patient(row: np.ndarray, dictionary: FeatureDictionary, top: int = 10) -> list[Contribution]:
    """One patient's largest contributions, signed (positive raises the risk)."""
    order = np.argsort(-np.abs(row), kind="stable")[:top]
    return [
        Contribution(dictionary.features[j].name, dictionary.features[j].key, float(row[j]))
        for j in order
        if row[j] != 0
    ]
