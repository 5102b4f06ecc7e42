"""The population looks like Gangwon: age pyramid, hypertension and diabetes by age band,
within the tolerances documented in ``data/prevalence_targets.csv`` and the README."""

from __future__ import annotations

import numpy as np
import pytest

from pmhub.synth import model, refdata
from pmhub.synth import params as pm
from pmhub.synth.chunk import network, year_days
from pmhub.synth.config import SynthConfig
from pmhub.synth.step import step

N = 20_000
Sim = tuple[model.State, int, int, model.State]  # baseline, start day, end day, final
PYRAMID_TOLERANCE = 0.008  # absolute share per 5-year band and sex


@pytest.fixture(scope="module")
def simulated() -> Sim:
    config = SynthConfig(sites=3, patients=N, years=5, seed=5)
    _, net = network(config)
    rng = np.random.default_rng(2024)
    start = year_days(config, 0)[0]
    state = model.init_population(np.arange(N), start, net, rng)
    baseline = state.take(np.arange(N))
    for t in range(config.years):
        step(state, *year_days(config, t), net, rng)
    end = year_days(config, config.years - 1)[0] + 365
    return baseline, start, end, state


def test_age_pyramid_matches_gangwon(simulated: Sim) -> None:
    baseline, start = simulated[0], simulated[1]
    age = model.age_years(baseline, start)
    pyr = refdata.pyramid()
    for i in range(len(pyr.age_from)):
        band = (age >= pyr.age_from[i]) & (age < pyr.age_to[i] + 1)
        assert abs((band & baseline.male).mean() - pyr.male[i]) < PYRAMID_TOLERANCE
        assert abs((band & ~baseline.male).mean() - pyr.female[i]) < PYRAMID_TOLERANCE
    assert 0.22 < (age >= 65).mean() < 0.27  # about a quarter aged 65+


def test_residence_is_one_of_the_18_gangwon_areas(simulated: Sim) -> None:
    baseline = simulated[0]
    codes = {r.code for r in refdata.regions()}
    assert len(codes) == 18
    assert all(c.startswith("51") for c in codes)
    counts = np.bincount(baseline.region, minlength=18)
    assert (counts > 0).all()
    wonju = [r.code for r in refdata.regions()].index("51130")
    assert counts.argmax() == wonju  # the most populous city


@pytest.mark.parametrize("when", ["start", "end"])
def test_prevalence_by_age_band_within_tolerance(simulated: Sim, when: str) -> None:
    baseline, start, end, final = simulated
    state, day = (baseline, start) if when == "start" else (final, end)
    age = model.age_years(state, day)
    alive = state.death >= day
    for row in refdata.read_csv("prevalence_targets.csv"):
        band = alive & (age >= int(row["age_from"])) & (age < int(row["age_to"]) + 1)
        observed = (state.onset[band, pm.COLUMN[row["condition"]]] < day).mean()
        assert abs(observed - float(row["target"])) <= float(row["tolerance"]), (row, observed)


def test_treatment_lowers_the_latent_values_it_targets(simulated: Sim) -> None:
    final, end = simulated[3], simulated[2]
    lat = model.latents(final, end)
    htn = model.has(final, "hypertension", end)
    treated = model.on(final, "antihypertensive", end)
    assert lat["sbp"][htn & treated].mean() < lat["sbp"][htn & ~treated].mean() - 8
    lipid = model.has(final, "dyslipidaemia", end)
    statin = model.on(final, "statin", end)
    assert lat["ldl"][lipid & statin].mean() < 0.7 * lat["ldl"][lipid & ~statin].mean()
