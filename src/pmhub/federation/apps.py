"""The Flower apps (Message API): one ClientApp per site, one ServerApp at the hub.

A SuperNode runs the ClientApp next to its own data (``node-config``: ``site``,
``table``, ``label``); only counts and sums (through :mod:`pmhub.predict.release`), model
parameters and metrics leave it. The ServerApp asks every site for its column sums (the
pooled standardisation), runs the strategy (FedAvg, FedProx or FedAdam) over the model
vector, refuses replies that are malformed, of the wrong shape or not finite, and asks
every site still there for its held-out metrics. A site that stops answering is left out
of the round after the round's timeout; the report says which sites each round used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from pmhub.disclosure import shown as shown_count
from pmhub.federation import logistic, table
from pmhub.federation.errors import SiteUpdateError
from pmhub.predict import covariates, evaluate, release, vocabulary
from pmhub.predict.covariates import Feature, FeatureDictionary
from pmhub.predict.release import FeatureCount
from pmhub.predict.service import SiteData

client = ClientApp()
server = ServerApp()


# --- the site --------------------------------------------------------------------------


def _site(context: Context, msg: Message) -> tuple[table.SiteTable, np.ndarray]:
    """The site's rows: its feature table, or its CDW's covariates in the hub's dictionary."""
    cfg = context.node_config
    if "cdw" in cfg:
        data = cdw_table(str(cfg["site"]), str(cfg["cdw"]), str(cfg["task"]), _dictionary(msg))
    else:
        data = table.load(str(cfg["site"]), Path(str(cfg["table"])), str(cfg["label"]))
    test = table.held_out(
        data.y, float(context.run_config["test-share"]), int(context.run_config["seed"]), data.site
    )
    return data, test


def _dictionary(msg: Message) -> FeatureDictionary:
    text = msg.content.config_records["dictionary"]["json"]
    return FeatureDictionary.from_json(json.loads(str(text)))


def _prepared(site: str, url: str, task_path: str) -> SiteData:
    from pmhub.cdm.backends import connect
    from pmhub.predict import service, task

    loaded = task.load(task_path)
    with connect(url) as backend:
        return service.prepare(backend, loaded, site)


def as_table(data: SiteData, dictionary: FeatureDictionary) -> table.SiteTable:
    """A CDW site's covariates in the dictionary's columns, as a (dense) feature table."""
    x = covariates.matrix(data.raw, dictionary).toarray()
    y = data.population.frame["outcome"].to_numpy(dtype=int)
    return table.SiteTable(data.site, [f.key for f in dictionary.features], x, y)


def cdw_table(
    site: str, url: str, task_path: str, dictionary: FeatureDictionary
) -> table.SiteTable:
    return as_table(_prepared(site, url, task_path), dictionary)


@client.query("features")
def feature_counts(msg: Message, context: Context) -> Message:
    """A CDW site's candidate features: persons with each (only counts it may show), the
    sums of value features, and their names in words."""
    cfg = context.node_config
    data = _prepared(str(cfg["site"]), str(cfg["cdw"]), str(cfg["task"]))
    counts = release.feature_counts(data.raw, int(context.run_config["threshold"]))
    shown = {
        k: [c.persons.value, c.total, c.squares]
        for k, c in counts.items()
        if c.persons.value is not None
    }
    names = {k: asdict(data.raw.info[k]) for k in shown}
    payload = json.dumps({"counts": shown, "names": names})
    return Message(RecordDict({"features": ConfigRecord({"json": payload})}), reply_to=msg)


def fix_dictionary(payloads: list[str], min_persons: int) -> FeatureDictionary:
    """The hub's vocabulary from the sites' released feature counts."""
    releases, info = [], {}
    for text in payloads:
        data = json.loads(text)
        releases.append(
            {k: FeatureCount(shown_count(int(v[0])), v[1], v[2]) for k, v in data["counts"].items()}
        )
        info.update({k: Feature(**f) for k, f in data["names"].items()})
    return vocabulary.fix(releases, info, min_persons)


def _arrays(content: RecordDict, key: str) -> list[np.ndarray]:
    return content.array_records[key].to_numpy_ndarrays()


def _scaling(msg: Message) -> tuple[np.ndarray, np.ndarray]:
    arrays = _arrays(msg.content, "scaling")
    return arrays[0], arrays[1]


@client.query()
def column_sums(msg: Message, context: Context) -> Message:
    """Per feature: rows with a value, their sum and sum of squares, on the training rows.
    A column with fewer values than the threshold is sent as hidden (count -1)."""
    data, test = _site(context, msg)
    threshold = int(context.run_config["threshold"])
    x = data.x[~test]
    present = ~np.isnan(x)
    counts = present.sum(axis=0)
    shown = np.array([not release.count(int(c), threshold).hidden for c in counts])
    sums = np.where(present, x, 0.0).sum(axis=0)
    squares = np.where(present, x * x, 0.0).sum(axis=0)
    records = ArrayRecord(
        [
            np.where(shown, counts, -1).astype(float),
            np.where(shown, sums, 0.0),
            np.where(shown, squares, 0.0),
        ]
    )
    names = ConfigRecord({"columns": data.columns, "site": data.site})
    return Message(RecordDict({"sums": records, "names": names}), reply_to=msg)


def _fault(context: Context, w: np.ndarray) -> np.ndarray:
    """A site told to misbehave (tests of the hub's refusals): NaN or a wrong shape."""
    fault = str(context.node_config.get("pmhub-fault", ""))
    if fault == "nan":
        return np.full_like(w, np.nan)
    if fault == "shape":
        return np.concatenate([w, [0.0]])
    return w


@client.train()
def train(msg: Message, context: Context) -> Message:
    data, test = _site(context, msg)
    mean, sd = _scaling(msg)
    w = _arrays(msg.content, "arrays")[0]
    config = msg.content.config_records["config"]
    run = context.run_config
    d = logistic.design(data.x[~test], mean, sd)
    updated = logistic.local_update(
        w,
        d,
        data.y[~test],
        steps=int(run["local-steps"]),
        lr=float(run["lr"]),
        l2=float(run["l2"]),
        mu=float(str(config.get("proximal-mu", 0.0))),
    )
    metrics = MetricRecord({"num-examples": int((~test).sum())})
    content = RecordDict({"arrays": ArrayRecord([_fault(context, updated)]), "metrics": metrics})
    return Message(content, reply_to=msg)


@client.evaluate()
def held_out_metrics(msg: Message, context: Context) -> Message:
    """Only metrics leave the site: those of a part with few outcomes are withheld."""
    data, test = _site(context, msg)
    mean, sd = _scaling(msg)
    w = _arrays(msg.content, "arrays")[0]
    p = logistic.predict(w, logistic.design(data.x[test], mean, sd))
    m = evaluate.evaluate(data.y[test], p, bootstrap=0)
    shown = release.metrics(m, int(context.run_config["threshold"]))
    values: dict[str, Any] = {"num-examples": int(test.sum())}
    if "withheld" not in shown:
        values.update(
            auroc=float(m.auroc or 0.0),
            brier=m.brier,
            calibration_slope=float(m.calibration_slope or 0.0),
            calibration_intercept=float(m.calibration_intercept or 0.0),
        )
    return Message(
        RecordDict({"metrics": MetricRecord(values), "site": ConfigRecord({"site": data.site})}),
        reply_to=msg,
    )


# --- the hub ---------------------------------------------------------------------------


def refusal(arrays: list[np.ndarray], examples: object, size: int) -> str:
    """Why a site's update is refused, or '' when the hub can average it."""
    if len(arrays) != 1 or arrays[0].shape != (size,):
        return f"wrong shape {[a.shape for a in arrays]}, expected {[(size,)]}"
    if not np.all(np.isfinite(arrays[0])):
        return "non-finite parameters"
    if isinstance(examples, bool) or not isinstance(examples, int | float) or examples <= 0:
        return "no training rows"
    return ""


def _check(reply: Message, size: int) -> str:
    if reply.has_error():
        return f"error: {reply.error.reason}"[:200]
    try:
        arrays = _arrays(reply.content, "arrays")
        examples = reply.content["metrics"]["num-examples"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return "malformed reply"
    return refusal(arrays, examples, size)


def guarded(kind: str, size: int, log: dict[str, Any], extra: RecordDict, **options: Any) -> FedAvg:
    """The strategy, refusing bad replies before they are averaged (and logging sizes);
    every message it sends carries the pooled standardisation beside the parameters."""
    bases: dict[str, type[FedAvg]] = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}
    base = bases[kind]

    class Guarded(base):  # type: ignore[valid-type,misc]
        def _construct_messages(
            self, record: RecordDict, node_ids: list[int], message_type: str
        ) -> Iterable[Message]:
            for key, value in extra.items():
                record[key] = value
            messages: Iterable[Message] = super()._construct_messages(
                record, node_ids, message_type
            )
            return messages

        def aggregate_train(
            self, server_round: int, replies: Iterable[Message]
        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
            kept: list[Message] = []
            used: list[str] = []
            refused: dict[str, str] = {}
            received = 0
            for reply in replies:
                node = str(reply.metadata.src_node_id)
                reason = _check(reply, size)
                if reason:
                    refused[node] = reason
                    continue
                received += int(reply.content.array_records["arrays"].count_bytes())
                used.append(node)
                kept.append(reply)
            entry = {"round": server_round, "used": used, "refused": refused, "bytes_in": received}
            log["rounds"].append(entry)
            if not kept:
                return None, None
            return super().aggregate_train(server_round, kept)  # type: ignore[no-any-return]

    strategy: FedAvg = Guarded(fraction_evaluate=0.0, **options)
    return strategy


def _broadcast(grid: Grid, kind: str, content: RecordDict, timeout: float) -> list[Message]:
    from flwr.app import MessageType

    kinds = {
        "query": MessageType.QUERY,
        "query.features": f"{MessageType.QUERY}.features",
        "evaluate": MessageType.EVALUATE,
    }
    messages = [
        Message(content, dst_node_id=n, message_type=kinds[kind]) for n in grid.get_node_ids()
    ]
    return [r for r in grid.send_and_receive(messages, timeout=timeout) if not r.has_error()]


Sums = tuple[list[str], np.ndarray, np.ndarray, np.ndarray]  # columns, counts, sums, squares


def _sums(reply: Message) -> Sums:
    counts, total, squares = _arrays(reply.content, "sums")
    columns = reply.content.config_records["names"]["columns"]
    return [str(c) for c in columns] if isinstance(columns, list) else [], counts, total, squares


def pooled_scaling(parts: list[Sums]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The pooled mean and SD of each column from the sites' released sums (a hidden
    column, count -1, adds nothing)."""
    if not parts or any(p[0] != parts[0][0] for p in parts):
        raise SiteUpdateError("the sites' feature tables do not have the same columns")
    width = len(parts[0][0])
    n, total, squares = np.zeros(width), np.zeros(width), np.zeros(width)
    for _, counts, sums, sq in parts:
        shown = counts >= 0
        n += np.where(shown, counts, 0)
        total += np.where(shown, sums, 0)
        squares += np.where(shown, sq, 0)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    var = np.divide(squares, n, out=np.ones_like(total), where=n > 0) - mean**2
    sd = np.where(var > 1e-12, np.sqrt(np.maximum(var, 1e-12)), 1.0)
    return parts[0][0], mean, sd


@server.main()
def main(grid: Grid, context: Context) -> None:
    run = context.run_config
    out = Path(str(run["out"]))
    timeout = float(run["round-timeout"])
    started = time.perf_counter()
    log: dict[str, Any] = {"rounds": [], "sites": {}}
    _wait_for_nodes(grid, int(run["min-sites"]), timeout)
    extra = RecordDict({})
    if str(run.get("source", "table")) == "cdw":
        counted = _broadcast(
            grid, "query.features", RecordDict({"config": ConfigRecord({})}), timeout
        )
        payloads = [str(r.content.config_records["features"]["json"]) for r in counted]
        dictionary = fix_dictionary(payloads, int(run["min-persons"]))
        log["dictionary"] = {"features": len(dictionary), "dropped": dictionary.dropped}
        extra["dictionary"] = ConfigRecord({"json": json.dumps(dictionary.to_json())})
    replies = _broadcast(grid, "query", RecordDict({"config": ConfigRecord({}), **extra}), timeout)
    log["sites"] = {str(r.metadata.src_node_id): str(r.content["names"]["site"]) for r in replies}
    columns, mean, sd = pooled_scaling([_sums(r) for r in replies])
    scaling = ArrayRecord([mean, sd])
    extra["scaling"] = scaling
    size = len(columns) + 1
    kind = str(run["strategy"])
    options: dict[str, Any] = {"min_available_nodes": 1, "min_train_nodes": 1}
    if kind == "fedprox":
        options["proximal_mu"] = float(run["mu"])
    if kind == "fedadam":
        options.update(eta=float(run["server-lr"]), tau=1e-3)
    strategy = guarded(kind, size, log, extra, **options)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros(size)]),
        num_rounds=int(run["rounds"]),
        timeout=timeout,
    )
    w = result.arrays.to_numpy_ndarrays()[0]
    content = RecordDict({"arrays": ArrayRecord([w]), **extra})
    final = _broadcast(grid, "evaluate", content, timeout)
    log["evaluation"] = {str(r.content["site"]["site"]): dict(r.content["metrics"]) for r in final}
    log["seconds"] = round(time.perf_counter() - started, 3)
    log["columns"] = columns
    log["weights"] = [float(v) for v in w]
    log["mean"], log["sd"] = [float(v) for v in mean], [float(v) for v in sd]
    log["bytes_out_per_round"] = int(
        ArrayRecord([np.zeros(size)]).count_bytes() + scaling.count_bytes()
    ) * len(log["sites"])
    (out / "federated.json").write_text(json.dumps(log, indent=2, sort_keys=True))


def _wait_for_nodes(grid: Grid, wanted: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < wanted and time.monotonic() < deadline:
        time.sleep(0.5)
