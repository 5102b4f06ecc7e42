"""Run a federated job on this machine: a Flower SuperLink and one SuperNode per site as
separate processes on 127.0.0.1 (explicit, distinct ports), and the comparison report.

``federate_tables`` trains logistic regression over the sites' feature tables with the
chosen strategy and writes ``DIR/report.json``: for each site's held-out part the metrics
of its local-only model, the federated model and the pooled model (the limit federated
learning aims for; computed here because every table is on this machine, which a real
network would not allow), the rounds (sites used, replies refused, bytes), and times.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pmhub.federation import logistic, table
from pmhub.federation.errors import FederationError, NotEnoughSitesError
from pmhub.predict import evaluate, release
from pmhub.predict.errors import TaskDefinitionError

STRATEGIES = ("fedavg", "fedprox", "fedadam")
START_TIMEOUT = 60.0  # seconds for the SuperLink to answer on its port


@dataclass(frozen=True)
class Settings:
    strategy: str = "fedavg"
    rounds: int = 20
    local_steps: int = 20
    lr: float = 0.5
    l2: float = 1e-3
    mu: float = 0.01
    server_lr: float = 0.05
    test_share: float = 0.3
    seed: int = 42
    threshold: int = 10
    round_timeout: float = 120.0
    faults: dict[str, str] = field(default_factory=dict)  # site → "nan" | "shape" (tests)
    kill_site: tuple[str, str] | None = None  # (site, log text): stop its node then (tests)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def _app(folder: Path, settings: Settings, out: Path, sites: int, extra: dict[str, Any]) -> Path:
    app = folder / "app"
    app.mkdir(parents=True)
    config = extra | {
        "out": _toml_string(str(out)),
        "rounds": settings.rounds,
        "strategy": _toml_string(settings.strategy),
        "local-steps": settings.local_steps,
        "lr": settings.lr,
        "l2": settings.l2,
        "mu": settings.mu,
        "server-lr": settings.server_lr,
        "test-share": settings.test_share,
        "seed": settings.seed,
        "threshold": settings.threshold,
        "round-timeout": settings.round_timeout,
        "min-sites": sites,
    }
    lines = "\n".join(f"{k} = {v}" for k, v in config.items())
    (app / "pyproject.toml").write_text(
        '[project]\nname = "pmhub-federated"\nversion = "1.0.0"\ndependencies = []\n\n'
        '[tool.flwr.app]\npublisher = "pmhub"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "pmhub.federation.apps:server"\n'
        'clientapp = "pmhub.federation.apps:client"\n\n'
        f"[tool.flwr.app.config]\n{lines}\n"
    )
    (app / "README.md").write_text("A pmhub federated job (generated).\n")
    return app


@dataclass
class Network:
    """The Flower processes of one run, each in its own process group."""

    folder: Path
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FLWR_HOME"] = str(self.folder / "home")
        bin_dir = str(Path(sys.executable).parent)  # flower-superexec must be on PATH
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
        )

    def stop(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the node and the apps it started
        process.wait(timeout=10)

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _wait_port(port: int, network: Network) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if network.processes["superlink"].poll() is not None:
            raise FederationError(
                f"the Flower SuperLink stopped at start (see {network.folder}/superlink.log)"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.3)
    raise FederationError(f"the Flower SuperLink did not answer on 127.0.0.1:{port}")


@contextlib.contextmanager
def network(folder: Path, nodes: dict[str, dict[str, str]]) -> Iterator[Network]:
    """A SuperLink and one SuperNode per site; stopped, all of them, on the way out."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "home").mkdir(exist_ok=True)
    net = Network(folder, free_port())
    (folder / "home" / "config.toml").write_text(
        '[superlink]\ndefault = "pmhub"\n\n[superlink.pmhub]\n'
        f'address = "127.0.0.1:{net.port}"\ninsecure = true\n'
    )
    try:
        net.start(
            "superlink",
            [
                _bin("flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(net.port),
                "--disable-runtime-dependency-installation",
            ],
        )
        _wait_port(net.port, net)
        for site, config in nodes.items():
            pairs = " ".join(f"{k}={_toml_string(v)}" for k, v in config.items())
            net.start(
                f"node-{site}",
                [
                    _bin("flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{net.port}",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    pairs,
                ],
            )
        yield net
    finally:
        net.close()


def _watch_and_kill(net: Network, log: Path, site: str, text: str, done: threading.Event) -> None:
    while not done.is_set():
        with contextlib.suppress(OSError):
            if text in log.read_text(errors="replace"):
                net.stop(f"node-{site}")
                return
        time.sleep(0.5)


def _run(net: Network, app: Path, settings: Settings, out: Path) -> dict[str, Any]:
    log = net.folder / "run.log"
    limit = settings.rounds * settings.round_timeout * 2 + 3 * settings.round_timeout + 120
    done = threading.Event()
    if settings.kill_site is not None:
        site, text = settings.kill_site
        threading.Thread(
            target=_watch_and_kill, args=(net, log, site, text, done), daemon=True
        ).start()
    try:
        with log.open("wb") as sink:
            subprocess.run(
                [_bin("flwr"), "run", str(app), "pmhub", "--stream"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=net.env(),
                timeout=limit,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise FederationError(f"the federated run took longer than {limit:.0f} s") from None
    finally:
        done.set()
    result = out / "federated.json"
    if not result.exists():
        tail = log.read_text(errors="replace")[-1500:]
        raise FederationError(f"the federated run ended without a result; its log ends:\n{tail}")
    data: dict[str, Any] = json.loads(result.read_text())
    return data


def _load_all(tables: dict[str, Path], label: str) -> dict[str, table.SiteTable]:
    if len(tables) < 2:
        raise NotEnoughSitesError("federated learning needs two or more sites")
    loaded = {site: table.load(site, path, label) for site, path in tables.items()}
    first = next(iter(loaded.values()))
    for site, data in loaded.items():
        if data.columns != first.columns:
            raise TaskDefinitionError(
                f"site {site!r}'s feature table has other columns than site {first.site!r}'s",
                hint="Every site's table needs the same feature columns in the same order.",
            )
    return loaded


def _metrics(y: np.ndarray, p: np.ndarray, threshold: int) -> dict[str, Any]:
    return release.metrics(evaluate.evaluate(y, p, bootstrap=0), threshold)


def _check_strategy(settings: Settings) -> None:
    if settings.strategy not in STRATEGIES:
        raise FederationError(
            f"unknown strategy {settings.strategy!r}", hint=f"Use one of {', '.join(STRATEGIES)}."
        )


def federate_tables(
    tables: dict[str, Path], label: str, out: Path, settings: Settings | None = None
) -> dict[str, Any]:
    """Federated, local-only and pooled logistic regression over the sites' tables."""
    settings = settings or Settings()
    _check_strategy(settings)
    data = _load_all(tables, label)
    nodes = {
        site: {"site": site, "table": str(tables[site].resolve()), "label": label} for site in data
    }
    return _federate(data, nodes, out, settings, {"source": _toml_string("table")})


def federate_task(
    task_reference: str, sites: dict[str, str], out: Path, settings: Settings | None = None
) -> dict[str, Any]:
    """The same over the sites' CDWs: each SuperNode builds the task's population and
    covariates on its own CDW; the hub fixes the feature dictionary from their released
    counts (Flower query), then trains on the covariates in that dictionary."""
    from pmhub.cdm.backends import connect
    from pmhub.federation import apps
    from pmhub.predict import service
    from pmhub.predict import task as tasks

    settings = settings or Settings()
    _check_strategy(settings)
    if len(sites) < 2:
        raise NotEnoughSitesError("federated learning needs two or more sites")
    loaded = tasks.load(task_reference)
    path = tasks.path_of(task_reference)
    prepared = []
    for site, url in sites.items():  # the reference models; closed before Flower starts
        with connect(url) as backend:
            prepared.append(service.prepare(backend, loaded, site))
    dictionary = service.fix_dictionary(prepared, loaded, settings.threshold)
    data = {d.site: apps.as_table(d, dictionary) for d in prepared}
    nodes = {site: {"site": site, "cdw": url, "task": str(path)} for site, url in sites.items()}
    extra = {"source": _toml_string("cdw"), "min-persons": loaded.task.covariates.min_persons}
    report = _federate(data, nodes, out, settings, extra)
    report["dictionary"] = {"features": len(dictionary), "dropped": dictionary.dropped}
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _federate(
    data: dict[str, table.SiteTable],
    nodes: dict[str, dict[str, str]],
    out: Path,
    settings: Settings,
    extra: dict[str, Any],
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    for site, fault in settings.faults.items():
        nodes[site]["pmhub-fault"] = fault
    tests = {s: table.held_out(d.y, settings.test_share, settings.seed, s) for s, d in data.items()}
    train_x = np.vstack([d.x[~tests[s]] for s, d in data.items()])
    train_y = np.concatenate([d.y[~tests[s]] for s, d in data.items()])
    mean = np.nanmean(train_x, axis=0)
    sd = np.nanstd(train_x, axis=0)
    mean, sd = np.nan_to_num(mean), np.where(np.nan_to_num(sd) > 1e-12, sd, 1.0)
    started = time.perf_counter()
    pooled = logistic.fit_pooled(logistic.design(train_x, mean, sd), train_y, settings.l2)
    pooled_seconds = time.perf_counter() - started
    folder = out / "flower"
    with network(folder, nodes) as net:
        app = _app(folder, settings, out, len(nodes), extra)
        federated = _run(net, app, settings, out)
    w = np.asarray(federated["weights"])
    f_mean, f_sd = np.asarray(federated["mean"]), np.asarray(federated["sd"])
    report = _report(data, tests, settings, pooled, (mean, sd), (w, f_mean, f_sd))
    report["federated"] = _rounds(federated)
    report["seconds"] = federated["seconds"]
    report["pooled_seconds"] = round(pooled_seconds, 4)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _rounds(federated: dict[str, Any]) -> dict[str, Any]:
    sites = federated["sites"]
    rounds = [
        {
            "round": r["round"],
            "sites": sorted(sites.get(n, n) for n in r["used"]),
            "refused": {sites.get(n, n): why for n, why in r["refused"].items()},
            "bytes_in": r["bytes_in"],
        }
        for r in federated["rounds"]
    ]
    everyone = set(sites.values())
    last = set(rounds[-1]["sites"]) if rounds else set()
    return {
        "rounds": rounds,
        "evaluation": federated["evaluation"],
        "dropped": sorted(everyone - last),  # answered at the start, not in the last round
        "bytes_per_round": federated["bytes_out_per_round"]
        + (int(np.mean([r["bytes_in"] for r in rounds])) if rounds else 0),
    }


def _report(
    data: dict[str, table.SiteTable],
    tests: dict[str, np.ndarray],
    settings: Settings,
    pooled: np.ndarray,
    scaling: tuple[np.ndarray, np.ndarray],
    federated: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Any]:
    per_site: dict[str, Any] = {}
    ys, p_fed, p_pool, p_local = [], [], [], []
    for site, d in data.items():
        test = tests[site]
        local_d = logistic.design(d.x[~test], *scaling)
        local = logistic.fit_pooled(local_d, d.y[~test], settings.l2)
        held = logistic.design(d.x[test], *scaling)
        fed_held = logistic.design(d.x[test], federated[1], federated[2])
        y = d.y[test]
        preds = {
            "local": logistic.predict(local, held),
            "federated": logistic.predict(federated[0], fed_held),
            "pooled": logistic.predict(pooled, held),
        }
        per_site[site] = {k: _metrics(y, p, settings.threshold) for k, p in preds.items()}
        ys.append(y)
        p_fed.append(preds["federated"])
        p_pool.append(preds["pooled"])
        p_local.append(preds["local"])
    y_all = np.concatenate(ys)
    federated_all = evaluate.evaluate(y_all, np.concatenate(p_fed), bootstrap=0)
    pooled_all = evaluate.evaluate(y_all, np.concatenate(p_pool), bootstrap=0)
    return {
        "sites": per_site,
        "federated_auroc": federated_all.auroc,
        "pooled_auroc": pooled_all.auroc,
        "federated_calibration_slope": federated_all.calibration_slope,
        "pooled_calibration_slope": pooled_all.calibration_slope,
        "local_auroc": {s: evaluate.auroc(y, p) for s, y, p in zip(data, ys, p_local, strict=True)},
        "strategy": settings.strategy,
        "rounds": settings.rounds,
    }
