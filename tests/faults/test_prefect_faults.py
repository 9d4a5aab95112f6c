"""Fault case 9: the Prefect server restarted while a served deployment run is in its training step.

The team stack (`infra.stack`, SQLite, own ports and folder) serves the deployment; the run is
started as the README shows it (`prefect deployment run … --watch`); once training has written a
checkpoint, the Prefect server alone is stopped and started again. The run then finishes, or ends
crashed and a re-run resumes from its checkpoint; either way one version is registered.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from infra.stack import Stack, down, up
from tasks.core.files import read_json
from tasks.training.resumption import SAVED_MARKER
from tests.conftest import REPO_ROOT
from tests.faults.conftest import KILLABLE_TRAINING as TRAIN
from tests.faults.conftest import child_env, free_port
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.faults

MODEL = "tiny-intent-restart"
DEPLOYMENT = "finetune/banking77"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
_FOREIGN = (
    "PREFECT_API_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "MLFLOW_BACKEND_STORE_URI",
    "PGPASSFILE",
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Stack, dict[str, str]]]:
    """The team stack on SQLite, its own ports and folder; stopped whatever happens."""
    env = {k: v for k, v in child_env().items() if k not in _FOREIGN}
    env.update(
        REFINERY_DB="sqlite",
        REFINERY_STACK_DIR=str(tmp_path / "stack"),
        REFINERY_PREFECT_PORT=str(free_port()),
        REFINERY_MLFLOW_PORT=str(free_port()),
        REFINERY_STACK_TIMEOUT="600",  # a shared 2-core CI machine can take minutes to start a server
        PREFECT_HOME=str(tmp_path / "prefect-cli"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    stack = Stack.from_env(env)
    env.update(stack.client_env())
    try:
        up(stack, env)
        yield stack, env
    finally:
        down(stack)


def _deployment_run(env: dict[str, str], params: Path, workdir: Path) -> subprocess.Popen[str]:
    command = ["prefect", "deployment", "run", DEPLOYMENT, "--param", f"params_path={params}"]
    command += ["--param", f"workdir={workdir}", "--watch", "--watch-timeout", "900"]
    out = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True, **out)


def _final_state(stack: Stack, flow_run_id: str, timeout_s: float = 600) -> str:
    """The run's state once it is final, read from the (restarted) server."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = httpx.get(f"{stack.prefect_api_url}/flow_runs/{flow_run_id}", timeout=10).json()["state"]
            if state["type"] in FINAL:
                return str(state["type"])
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"flow run {flow_run_id} not final after {timeout_s} s")


def test_a_prefect_server_restart_during_training_loses_nothing_and_registers_once(
    tmp_path: Path, served: tuple[Stack, dict[str, str]]
) -> None:
    stack, env = served
    base = build_tiny_classifier(tmp_path / "tiny-base", ["x", "y"])
    banking_sample().to_csv(tmp_path / "train.csv", index=False)
    params = tiny_params(tmp_path, base, tmp_path / "train.csv", train=TRAIN, register={"model_name": MODEL})
    workdir = tmp_path / "run"
    started = time.monotonic()
    watcher = _deployment_run(env, params, workdir)

    deadline = time.monotonic() + 600
    while not list((tmp_path / "cache" / "checkpoints").glob(f"*/checkpoint-*/{SAVED_MARKER}")):
        assert watcher.poll() is None, watcher.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in 600 s"
        time.sleep(0.02)
    down(stack, only={"prefect"})  # in the middle of the training step
    up(stack, env, only={"prefect"})
    restarted = time.monotonic()
    output = watcher.communicate(timeout=900)[0]
    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert match, output[-3000:]
    state = _final_state(stack, match.group(1))
    if state != "COMPLETED":  # crashed with the server: the same run again resumes
        # Prefect's serve process does not recover its polling after losing the server
        # (NoEventLoopError in its log): the operator restarts it, as `make down/up` would
        down(stack, only={"deployments"})
        up(stack, env, only={"deployments"})
        again = _deployment_run(env, params, workdir)
        rerun = again.communicate(timeout=900)[0]
        assert again.returncode == 0, rerun[-3000:]
    training = read_json(workdir / "train" / "metrics.json")
    print(f"prefect restart: first run {state}, restart at {restarted - started:.1f} s, "
          f"in all {time.monotonic() - started:.1f} s; training {training}")  # fmt: skip

    assert training["global_steps"] == TRAIN["max_steps"]
    if state != "COMPLETED":
        assert training.get("resumed") or training.get("reused"), training
    client = MlflowClient(tracking_uri=stack.mlflow_url)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
