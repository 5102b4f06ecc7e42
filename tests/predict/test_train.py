"""Training, evaluation and the model package on a generated 3-hospital network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.predict import package, service, task
from pmhub.predict.errors import ModelPackageError, PredictError, TooFewEventsError

pytestmark = pytest.mark.xdist_group("predict-network")


@pytest.fixture
def sites(cdws: dict[str, Path]) -> Iterator[dict[str, Backend]]:
    opened: dict[str, Backend] = {name: DuckDBBackend(path) for name, path in cdws.items()}
    yield opened
    for backend in opened.values():
        backend.close()


def with_model(name: str, **model: object) -> task.LoadedTask:
    loaded = task.load(name)
    data = loaded.task.model_dump(mode="json")
    data["model"].update(model)
    return task.LoadedTask(task.parse(data), loaded.target, loaded.outcome)


def test_pooled_model_discriminates_and_is_reported_without_small_cells(
    sites: dict[str, Backend], tmp_path: Path
) -> None:
    loaded = task.load("t2dm_death")
    result = service.train(loaded, sites)
    assert result.test.auroc is not None
    assert result.test.auroc > 0.7
    assert result.test.auroc_low is not None
    assert result.test.auroc_low < result.test.auroc
    assert set(result.per_site) == set(sites)
    assert set(result.groups) == {"sex", "age", "site"}
    names = [c.feature for c in result.importance]
    assert any("age at the index" in n for n in names)
    assert all(not n.startswith(("condition:", "drug:", "measurement:")) for n in names)
    summary = result.summary(threshold=10)
    text = json.dumps(summary)
    for cells in summary["attrition"].values():
        for step in cells:
            assert (
                step["persons"] == "(s)" or int(step["persons"]) == 0 or int(step["persons"]) >= 10
            )
    assert "person_id" not in text
    folder = service.save(tmp_path / "model", loaded, result)
    pkg = package.read(folder)
    assert pkg.model.to_json() == result.model.to_json()
    assert len(pkg.dictionary) == len(result.dictionary)
    site = next(iter(sites))
    validated = service.validate_at(folder, sites[site], site)
    assert validated.metrics.persons > 0
    assert validated.metrics.auroc is not None
    assert validated.missing_features < len(pkg.dictionary)


def test_the_same_seed_gives_the_same_package(sites: dict[str, Backend], tmp_path: Path) -> None:
    loaded = with_model("t2dm_death", kind="lightgbm")
    one = service.save(tmp_path / "one", loaded, service.train(loaded, sites))
    two = service.save(tmp_path / "two", loaded, service.train(loaded, sites))
    for name in ("model.json", "dictionary.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    (two / "model.json").write_text((two / "model.json").read_text().replace("0", "1", 1))
    with pytest.raises(ModelPackageError, match="changed after"):
        package.read(two)
    with pytest.raises(ModelPackageError, match="not an empty folder"):
        service.save(one, loaded, service.train(loaded, sites))


def test_leave_one_site_out_tests_on_the_held_out_site_only(sites: dict[str, Backend]) -> None:
    loaded = task.load("t2dm_death")
    data = loaded.task.model_dump(mode="json")
    held_out = next(iter(sites))
    data["validation"] = {"split": "site", "test_site": held_out, "bootstrap": 0}
    site_split = task.LoadedTask(task.parse(data), loaded.target, loaded.outcome)
    result = service.train(site_split, sites)
    assert list(result.per_site) == [held_out]
    assert result.test.persons == result.per_site[held_out].persons


def test_a_time_split_tests_on_the_later_index_dates(sites: dict[str, Backend]) -> None:
    loaded = task.load("t2dm_death")
    data = loaded.task.model_dump(mode="json")
    data["validation"] = {"split": "time", "time_cutoff": "2021-01-01", "bootstrap": 0}
    result = service.train(task.LoadedTask(task.parse(data), loaded.target, loaded.outcome), sites)
    frames = result.test_predictions
    assert sum(len(f) for f in frames.values()) == result.test.persons > 0


def test_too_few_outcomes_are_refused_with_the_counts(sites: dict[str, Backend]) -> None:
    loaded = task.load("af_stroke")  # a few dozen AF patients per site, few strokes
    with pytest.raises(TooFewEventsError, match=r"\d+ outcomes among \d+ persons"):
        service.train(loaded, {k: sites[k] for k in list(sites)[:1]})


def test_a_site_split_needs_two_sites(sites: dict[str, Backend]) -> None:
    loaded = task.load("t2dm_death")
    data = loaded.task.model_dump(mode="json")
    data["validation"] = {"split": "site"}
    one = {k: sites[k] for k in list(sites)[:1]}
    with pytest.raises(PredictError, match="two or more sites"):
        service.train(task.LoadedTask(task.parse(data), loaded.target, loaded.outcome), one)
