"""A generated 3-hospital network in DuckDB CDWs (pmhub synth), built once per session."""

from __future__ import annotations

from pathlib import Path

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.synth import refdata
from pmhub.synth.load import load_sites

PATIENTS = 12_000
SEED = 20261207


def build(folder: Path, patients: int = PATIENTS, sites: int = 3) -> dict[str, Path]:
    """The network's CDW files by site (catalogue order), loaded with its ground truth."""
    names = [s.name for s in refdata.sites()[:sites]]
    paths = {name: folder / f"{name}.duckdb" for name in names}
    backends: dict[str, Backend] = {}
    try:
        for name, path in paths.items():
            backend: Backend = DuckDBBackend(path)
            schema.init_cdm(backend, source_name=name, abbreviation=name[:10], holder="pmhub")
            backends[name] = backend
        load_sites(backends, patients=patients, years=10, seed=SEED, truth_dir=folder / "truth")
    finally:
        for backend in backends.values():
            backend.close()
    return paths
