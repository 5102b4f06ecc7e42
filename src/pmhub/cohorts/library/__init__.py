"""Example cohort definitions shipped with pmhub (see README.md beside this file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pmhub.cohorts.definition import Definition, load


def names() -> list[str]:
    folder = resources.files(__name__)
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def path(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(f"{name}.yaml")))


def example(name: str) -> Definition:
    return load(path(name))


def resolve(reference: str) -> Path:
    """A definition file's path, or the path of a library example given by its name."""
    candidate = Path(reference)
    if not candidate.exists() and reference in names():
        return path(reference)
    return candidate
