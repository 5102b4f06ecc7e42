"""Re-identification risk of a table, from the sizes of its quasi-identifier classes.

- prosecutor: the attacker knows the person is in the data; a record's risk is 1/f, f the
  size of its class in the sample;
- journalist: the attacker matches against the population; risk 1/F, F the class's size
  in the population (a population table, or the estimate below);
- marketer: the expected share of records re-identified when matching everyone, the mean
  of f/F over classes weighted per record.

For each: the highest risk, the average, and the share of records above a threshold
(0.2, i.e. classes smaller than 5, by default). Population uniqueness is estimated with
the Poisson-gamma superpopulation model of Bethlehem, Keller and Pannekoek (1990): cell
rates are gamma distributed over K possible cells, fitted by moments to the sample's
class sizes; a sample unique is a population unique with probability
(1 + (N - n) / (1/beta + n))^-(alpha + 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pmhub.privacy.errors import PrivacyInputError

DEFAULT_THRESHOLD = 0.2


@dataclass
class Measure:
    highest: float
    average: float
    share_above: float


@dataclass
class Risk:
    records: int
    classes: int
    threshold: float
    prosecutor: Measure
    journalist: Measure
    marketer: float
    sample_uniques: int
    sample_unique_share: float
    population_size: int
    population_uniques_estimate: float
    population_unique_share: float
    model: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _measure(per_class: np.ndarray, sizes: np.ndarray, threshold: float) -> Measure:
    n = sizes.sum()
    return Measure(
        highest=float(per_class.max()),
        average=float(np.sum(per_class * sizes) / n),
        share_above=float(sizes[per_class > threshold].sum() / n),
    )


@dataclass
class GammaFit:
    alpha: float
    beta: float


def fit_gamma(sizes: np.ndarray, cells: int) -> GammaFit:
    """Moment fit of the cell-rate distribution (mean 1/K) to the observed class sizes."""
    n = float(sizes.sum())
    cells = max(cells, len(sizes))
    mean = n / cells
    variance = float(np.sum(sizes.astype(float) ** 2)) / cells - mean**2
    over = variance - mean
    alpha = mean**2 / over if over > 0 else 1e6  # no overdispersion: nearly Poisson
    return GammaFit(alpha, 1.0 / (cells * alpha))


def estimate_population(sizes: np.ndarray, cells: int, population: int) -> tuple[np.ndarray, float]:
    """Expected population class sizes, and the expected population uniques among sample uniques."""
    n = float(sizes.sum())
    if population <= n:
        return sizes.astype(float), float(np.sum(sizes == 1))
    fit = fit_gamma(sizes, cells)
    rate = 1.0 / fit.beta + n
    expected = sizes + (population - n) * (fit.alpha + sizes) / rate
    unique_prob = (1.0 + (population - n) / rate) ** (-(fit.alpha + 1.0))
    return expected, float(np.sum(sizes == 1) * unique_prob)


def assess(
    sizes: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    population_sizes: np.ndarray | None = None,
    population_size: int | None = None,
    cells: int | None = None,
) -> Risk:
    """Risk from class sizes (and, when known, each class's size in the population)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    sizes = sizes[sizes > 0]
    if not len(sizes):
        raise PrivacyInputError("the data has no records; there is no risk to measure")
    if not 0 < threshold <= 1:
        raise PrivacyInputError(f"the risk threshold must be in (0, 1], not {threshold}")
    n = int(sizes.sum())
    population = max(int(population_size or n), n)
    expected, uniques = estimate_population(sizes, cells or len(sizes), population)
    model = "Poisson-gamma estimate" if population > n else "sample is the population"
    if population_sizes is not None:
        expected = np.maximum(np.asarray(population_sizes, dtype=float), sizes)
        uniques = float(np.sum((sizes == 1) & (expected == 1)))
        model = "population table"
    prosecutor = _measure(1.0 / sizes, sizes, threshold)
    journalist = _measure(1.0 / expected, sizes, threshold)
    return Risk(
        records=n,
        classes=len(sizes),
        threshold=threshold,
        prosecutor=prosecutor,
        journalist=journalist,
        marketer=float(np.sum(sizes / expected) / n),
        sample_uniques=int(np.sum(sizes == 1)),
        sample_unique_share=float(np.sum(sizes == 1) / n),
        population_size=population,
        population_uniques_estimate=uniques,
        population_unique_share=uniques / n,
        model=model,
    )
