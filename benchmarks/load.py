"""The team stack under load: trainings queued on the deployment while people read and promote.

`run_load` submits flow runs of a tiny model to `finetune/banking77` all at once (the training
concurrency limit queues them), while reader threads search runs, list versions and read aliases
on the MLflow server and list flow runs on the Prefect server, and one thread runs
`refinery promote` / `refinery rollback` in a loop. Every request is timed; any exception or
non-zero exit is an error. Used by benchmarks/team_load.py and tests/e2e/test_team_load.py.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENT = "finetune/banking77"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Timings:
    """Latencies (seconds) and errors per operation, shared by the threads."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, operation: str, call: Callable[[], object]) -> object:
        """Run `call`, recording its latency, or its error (returns None then)."""
        start = time.perf_counter()
        try:
            result = call()
        except Exception as err:
            with self.lock:
                self.errors.setdefault(operation, []).append(f"{type(err).__name__}: {err}"[:300])
            return None
        with self.lock:
            self.latencies.setdefault(operation, []).append(time.perf_counter() - start)
        return result

    def summary(self) -> dict[str, dict[str, float]]:
        """Per operation and in total: requests served, errors, p50 and p95 in milliseconds."""
        rows = {
            name: self._row(values, len(self.errors.get(name, []))) for name, values in self.latencies.items()
        }
        every = [v for values in self.latencies.values() for v in values]
        rows["total"] = self._row(every, sum(len(e) for e in self.errors.values()))
        return rows

    @staticmethod
    def _row(values: list[float], errors: int) -> dict[str, float]:
        cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
        return {
            "served": len(values),
            "errors": errors,
            "p50_ms": round(1000 * statistics.median(values), 1) if values else 0.0,
            "p95_ms": round(1000 * cuts[94], 1) if values else 0.0,
        }


@dataclass(frozen=True)
class Target:
    """The stack under test: its two servers, the model the runs register, the client environment."""

    prefect_api: str
    mlflow_url: str
    model_name: str
    experiment: str
    env: Mapping[str, str]


def submit_flow_runs(target: Target, params: Path, workdirs: list[Path], max_steps: int) -> list[str]:
    """Create one flow run per workdir on the deployment, all at once; their ids.

    Each run trains with its own seed, as a team's queue holds different trainings: the same
    inputs twice would train once and register once (the second run finds its weights registered).
    """
    deployment = httpx.get(f"{target.prefect_api}/deployments/name/{DEPLOYMENT}", timeout=30).json()
    ids = []
    for workdir in workdirs:
        seed = 42 + zlib.crc32(workdir.name.encode()) % 10_000  # distinct per run, stable per name
        parameters = {
            "params_path": str(params),
            "overrides": {"train.max_steps": max_steps, "train.seed": seed},
            "workdir": str(workdir),
        }
        response = httpx.post(
            f"{target.prefect_api}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": parameters},
            timeout=30,
        )
        response.raise_for_status()
        ids.append(str(response.json()["id"]))
    return ids


def flow_run_states(target: Target, ids: list[str]) -> dict[str, str]:
    """The state type of each flow run."""
    return {
        i: httpx.get(f"{target.prefect_api}/flow_runs/{i}", timeout=30).json()["state"]["type"] for i in ids
    }


def _reader(target: Target, timings: Timings, flow_run_ids: list[str], stop: threading.Event) -> None:
    """One team member's reads, in a loop until `stop`."""
    client = MlflowClient(tracking_uri=target.mlflow_url)
    experiment = client.get_experiment_by_name(target.experiment)
    experiment_ids = [experiment.experiment_id] if experiment else []
    name = target.model_name
    reads: dict[str, Callable[[], object]] = {
        "mlflow search_runs": lambda: client.search_runs(experiment_ids, max_results=50),
        "mlflow search_model_versions": lambda: client.search_model_versions(f"name='{name}'"),
        "mlflow get_registered_model (aliases)": lambda: client.get_registered_model(name).aliases,
        "prefect flow_runs/filter": lambda: httpx.post(
            f"{target.prefect_api}/flow_runs/filter",
            json={"flow_runs": {"id": {"any_": flow_run_ids}}},
            timeout=30,
        ).raise_for_status(),
    }
    while not stop.is_set():
        for operation, call in reads.items():
            timings.timed(operation, call)


def _cli(target: Target, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli.main", *args], cwd=REPO, env=dict(target.env),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])


def _promoter(target: Target, timings: Timings, stop: threading.Event) -> None:
    """`refinery promote` of each registered version but the champion in turn, `refinery rollback`
    after each. Never the champion itself: promoting it again moves nothing, and a promotion that
    replaces a champion is what gives the rollback its `previous-champion`."""
    client = MlflowClient(tracking_uri=target.mlflow_url)
    turn = 0
    while not stop.is_set():
        champion = client.get_registered_model(target.model_name).aliases.get("champion")
        versions = sorted(
            (
                v.version
                for v in client.search_model_versions(f"name='{target.model_name}'")
                if str(v.version) != str(champion)
            ),
            key=int,
        )
        if not versions:
            stop.wait(2.0)
            continue
        version = versions[turn % len(versions)]
        turn += 1
        promote = partial(_cli, target, "promote", target.model_name, "--version", version)
        timings.timed("refinery promote", promote)
        aliases = client.get_registered_model(target.model_name).aliases
        if "previous-champion" in aliases:
            timings.timed("refinery rollback", partial(_cli, target, "rollback", target.model_name))


def versions_per_flow_run(target: Target, ids: list[str]) -> dict[str, int]:
    """How many versions of the model each flow run registered (tag prefect_flow_run_id)."""
    client = MlflowClient(tracking_uri=target.mlflow_url)
    tagged = [
        v.tags.get("prefect_flow_run_id") for v in client.search_model_versions(f"name='{target.model_name}'")
    ]
    return {i: tagged.count(i) for i in ids}


def _prepare(target: Target) -> None:
    """The experiment and the registered model exist before the readers start (the runs add to them)."""
    client = MlflowClient(tracking_uri=target.mlflow_url)
    if client.get_experiment_by_name(target.experiment) is None:
        client.create_experiment(target.experiment)
    if not client.search_registered_models(f"name='{target.model_name}'"):
        client.create_registered_model(target.model_name)


def wait_for(target: Target, ids: list[str], timeout_s: float) -> dict[str, str]:
    """The flow runs' final state types (or the last seen, after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    states = flow_run_states(target, ids)
    while time.monotonic() < deadline and not set(states.values()) <= TERMINAL:
        time.sleep(5.0)
        states = flow_run_states(target, ids)
    return states


def run_load(
    target: Target, params: Path, workdir: Path, flow_runs: int, clients: int, duration_s: float,
    max_steps: int = 20, flow_timeout_s: float = 1800.0, min_promotions: int = 0, seed_runs: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Flow runs submitted at once, `clients` readers and the promoter for `duration_s` (longer, until
    `min_promotions` promotions were served, when asked: a short test needs a version to promote).
    `seed_runs` trainings run to the end first, untimed, as the versions a team already has."""
    _prepare(target)
    if seed_runs:  # versions registered before the clock starts: promote/rollback have work from t=0
        seeds = submit_flow_runs(target, params, [workdir / f"seed-{i}" for i in range(seed_runs)], max_steps)
        wait_for(target, seeds, flow_timeout_s)
    started = time.monotonic()
    ids = submit_flow_runs(target, params, [workdir / f"run-{i}" for i in range(flow_runs)], max_steps)
    timings, stop = Timings(), threading.Event()
    threads = [threading.Thread(target=_reader, args=(target, timings, ids, stop)) for _ in range(clients)]
    threads.append(threading.Thread(target=_promoter, args=(target, timings, stop)))
    for thread in threads:
        thread.start()
    stop.wait(duration_s)
    deadline = started + flow_timeout_s
    while len(timings.latencies.get("refinery promote", [])) < min_promotions and time.monotonic() < deadline:
        time.sleep(1.0)
    stop.set()
    reading_s = round(time.monotonic() - started, 1)
    for thread in threads:
        thread.join()
    states = wait_for(target, ids, flow_timeout_s)
    return {
        "flow_runs": flow_runs,
        "clients": clients,
        "duration_s": reading_s,
        "operations": timings.summary(),
        "error_samples": {name: errors[:3] for name, errors in timings.errors.items()},
        "flow_run_states": states,
        "versions_per_flow_run": versions_per_flow_run(target, ids),
        "all_runs_done_s": round(time.monotonic() - started, 1),
    }
