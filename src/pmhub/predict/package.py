"""The model package: everything the CDSS needs to apply a model, with a hash of each file.

    model.json        the fitted model (coefficients, or the LightGBM booster as text)
    dictionary.json   the feature dictionary (keys, names, standardisation)
    task.json         the task and both cohort definitions
    metrics.json      the released evaluation (counts suppressed) and explanations
    model_card.json   what the model is for, its data, its limits
    manifest.json     SHA-256 of every file above

Written into a fresh folder beside the target and renamed into place, so a package is
whole or absent; read back only when every hash matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmhub import __version__
from pmhub.cohorts.definition import dumps as dump_definition
from pmhub.cohorts.definition import loads as load_definition
from pmhub.predict.covariates import FeatureDictionary
from pmhub.predict.errors import ModelPackageError
from pmhub.predict.models import Fitted
from pmhub.predict.task import LoadedTask, Task

FILES = ("model.json", "dictionary.json", "task.json", "metrics.json", "model_card.json")
MAX_FILE_BYTES = 256 << 20


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(
    out: Path,
    loaded: LoadedTask,
    model: Fitted,
    dictionary: FeatureDictionary,
    summary: dict[str, Any],
) -> Path:
    """Write the package into ``out`` (which must not exist or be empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelPackageError(
            f"{out} exists and is not an empty folder",
            hint="Give a new folder with --out; pmhub does not overwrite a model package.",
        )
    contents = {
        "model.json": _json(model.to_json()),
        "dictionary.json": _json(dictionary.to_json()),
        "task.json": _json(
            {
                "task": loaded.task.model_dump(mode="json"),
                "target": json.loads(dump_definition(loaded.target)),
                "outcome": json.loads(dump_definition(loaded.outcome)),
            }
        ),
        "metrics.json": _json(summary),
        "model_card.json": _json(_card(loaded, model, summary)),
    }
    manifest = {"pmhub": __version__, "files": {n: _sha256(b) for n, b in contents.items()}}
    contents["manifest.json"] = _json(manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _card(loaded: LoadedTask, model: Fitted, summary: dict[str, Any]) -> dict[str, Any]:
    task = loaded.task
    return {
        "name": task.name,
        "intended_use": task.description
        or f"risk of {loaded.outcome.name} in persons entering {loaded.target.name}",
        "target_cohort": loaded.target.name,
        "outcome_cohort": loaded.outcome.name,
        "time_at_risk": task.time_at_risk.model_dump(mode="json"),
        "model": model.kind,
        "training": summary.get("train"),
        "evaluation": summary.get("test"),
        "limits": [
            "validated only on the sites and period named in the evaluation",
            "features are those of the OMOP CDW the sites keep; a site that records "
            "less sees lower risks",
        ],
    }


@dataclass
class Package:
    folder: Path
    loaded: LoadedTask
    model: Fitted
    dictionary: FeatureDictionary
    metrics: dict[str, Any]


def _read(folder: Path, name: str) -> bytes:
    path = folder / name
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ModelPackageError(f"{path} is larger than a model package file can be")
        return path.read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"cannot read {path}: {exc.strerror}") from None


def _parse(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ModelPackageError(f"{name} in the model package is not JSON ({exc})") from None


def read(folder: Path) -> Package:
    """A package whose every file matches its manifest hash."""
    manifest = _parse(_read(folder, "manifest.json"), "manifest.json")
    hashes = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(hashes, dict) or set(hashes) != set(FILES):
        raise ModelPackageError(f"{folder}/manifest.json does not list the package's files")
    contents = {}
    for name in FILES:
        data = _read(folder, name)
        if _sha256(data) != hashes[name]:
            raise ModelPackageError(
                f"{folder}/{name} was changed after the package was written (hash differs)"
            )
        contents[name] = _parse(data, name)
    try:
        spec = contents["task.json"]
        loaded = LoadedTask(
            Task.model_validate(spec["task"]),
            load_definition(json.dumps(spec["target"]), source="target"),
            load_definition(json.dumps(spec["outcome"]), source="outcome"),
        )
        dictionary = FeatureDictionary.from_json(contents["dictionary.json"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelPackageError(f"{folder} is not a pmhub model package ({exc})") from None
    model = Fitted.from_json(contents["model.json"])
    if model.coef is not None and len(model.coef) != len(dictionary):
        raise ModelPackageError(f"{folder}: the model's coefficients do not match its features")
    return Package(folder, loaded, model, dictionary, contents["metrics.json"])
