"""Optional heavy dependencies, imported on first use (pydicom's habit).

A missing one is an error naming the package and the extra that installs it; tests that
need it skip themselves with the same words.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pmhub.errors import MissingExtraError

# module → (extra, what it is for)
EXTRAS: dict[str, tuple[str, str]] = {
    "flwr": ("federation", "federated learning and analytics (Flower)"),
    "sklearn": ("predict", "patient-level prediction models (scikit-learn)"),
    "lightgbm": ("predict", "gradient-boosted tree models (LightGBM)"),
    "shap": ("predict", "model explanations (SHAP)"),
    "pyspark": ("spark", "the Spark CDW backend"),
    "playwright": ("e2e", "browser tests of the portal"),
    "fhir.resources": ("fhir", "FHIR R4 resource validation"),
}


def require(module: str) -> ModuleType:
    """Import an optional dependency or say exactly what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]  # sklearn.metrics is installed with sklearn
        extra, purpose = EXTRAS.get(module, EXTRAS.get(top, ("", "this feature")))
        install = f"pip install 'pmhub[{extra}]'" if extra else f"pip install {top}"
        raise MissingExtraError(
            f"{purpose} needs the package {module!r}, which is not installed",
            hint=f"Install it with: {install}",
        ) from exc


def available(module: str) -> bool:
    try:
        require(module)
    except MissingExtraError:
        return False
    return True
