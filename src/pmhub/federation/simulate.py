"""Feature tables of a network drawn from a known risk model, with site differences (other
case mix, another baseline risk): the true risk is the limit of any model. For tests,
benchmarks and demos of federated learning on plain tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

COEF = np.array([0.9, -0.6, 0.5, 0.4, 0.0, 0.7])
SITES = {  # name → (shift of the case mix, baseline log-odds)
    "north": (0.0, -2.2),
    "south": (0.6, -2.6),
    "east": (-0.4, -2.0),
    "west": (0.3, -2.4),
    "central": (-0.2, -2.1),
}


def draw(
    n: int, shift: float, intercept: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.column_stack(
        [
            rng.normal(shift, 1, n),
            rng.normal(0, 1, n),
            rng.integers(0, 2, n),
            rng.normal(shift / 2, 1, n),
            rng.normal(0, 1, n),
            (rng.random(n) < 0.2).astype(float),
        ]
    )
    risk = 1 / (1 + np.exp(-(intercept + x @ COEF)))
    y = (rng.random(n) < risk).astype(int)
    return x, y, risk


def write(folder: Path, n: int = 3000, seed: int = 11, sites: int = 3) -> dict[str, Path]:
    """One CSV per site (``<site>.csv``, label ``outcome``); the true risks beside them
    (``<site>.truth.npy``)."""
    rng = np.random.default_rng(seed)
    paths = {}
    for site, (shift, intercept) in list(SITES.items())[:sites]:
        x, y, risk = draw(n, shift, intercept, rng)
        columns = {f"x{j}": pa.array(x[:, j]) for j in range(x.shape[1])}
        path = folder / f"{site}.csv"
        pacsv.write_csv(pa.table({**columns, "outcome": pa.array(y)}), path)
        np.save(folder / f"{site}.truth.npy", risk)
        paths[site] = path
    return paths
