"""Team mode as the README shows it: `make up`, `prefect deployment run`, the registry on the MLflow
server, promote / serve / rollback, `make down` — real processes on free ports."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from mlflow import MlflowClient

from flows.finetune import TRAINING_LIMIT
from infra.processes import ProcessRecord, owned_processes, port_in_use, start_group, stop_groups
from infra.stack import HOST, OWNER_ENV, READY_DEPLOYMENT, owner, services
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import DEPLOYMENT, DPO_MODEL_NAME, MODEL_NAME, TeamStack, TrainedRun, free_port
from tests.integration.conftest import SAMPLE_CLASSES
from tests.integration.task_examples import EXAMPLES

pytestmark = pytest.mark.e2e


def _records(team: TeamStack) -> dict[str, ProcessRecord]:
    found = {}
    for wave in services(team.stack):
        for service in wave:
            record = ProcessRecord.load(team.stack.root / f"{service.name}.pid")
            if record is not None:
                found[service.name] = record
    return found


def test_make_up_is_idempotent_and_ui_prints_both_addresses(stack_up: TeamStack) -> None:
    before = _records(stack_up)
    assert set(before) == {"postgres", "prefect", "mlflow", "deployments", "worker"}
    again = stack_up.make("up")
    assert "nothing started" in again.stdout
    assert _records(stack_up) == before  # the same processes, none started twice

    ui = stack_up.make("ui").stdout
    assert stack_up.stack.prefect_ui_url in ui and stack_up.stack.mlflow_url in ui
    assert DEPLOYMENT == READY_DEPLOYMENT


def test_deployment_run_trains_on_the_served_process_and_registers_on_the_server(
    stack_up: TeamStack, trained: list[TrainedRun]
) -> None:
    for run in trained:
        assert "Flow run finished successfully in 'Completed'" in run.output
        assert (run.workdir / "registration.json").is_file()  # written by the serving process
    # MLFLOW_TRACKING_URI of the serving process won over the params' sqlite:///…/mlflow.db
    assert not (stack_up.home / "mlflow.db").exists() and not (stack_up.home / "dpo" / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=stack_up.stack.mlflow_url)
    for name in (MODEL_NAME, DPO_MODEL_NAME):  # each version tagged with the flow run that made it
        tagged = {v.tags["prefect_flow_run_id"] for v in client.search_model_versions(f"name='{name}'")}
        assert tagged == {r.flow_run_id for r in trained if r.model_name == name}, name
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    run = client.get_run(versions[0].run_id)
    assert run.data.params["train.max_steps"] in ("20", "12")  # the per-run override reached params
    assert client.get_model_version_by_alias(MODEL_NAME, "challenger").version == max(
        (v.version for v in versions), key=int
    )
    # the DPO params file ran as `task: preference`, its override applied, scored on held-out pairs
    dpo = client.get_run(client.get_model_version_by_alias(DPO_MODEL_NAME, "challenger").run_id).data
    assert dpo.params["task"] == "preference" and dpo.params["train.max_steps"] == "2"
    assert 0.0 <= dpo.metrics["test_preference_accuracy"] <= 1.0 and "test_reward_margin" in dpo.metrics
    # each newer task type's example params file ran as its task, registered with its own metric
    for name, metric in EXAMPLES.items():
        stem = Path(name).stem
        recorded = client.get_run(client.get_model_version_by_alias(f"tiny-{stem}", "challenger").run_id).data
        task = yaml.safe_load((REPO_ROOT / name).read_text(encoding="utf-8"))["task"]
        assert recorded.params["task"] == task and f"test_{metric}" in recorded.metrics, name


def test_training_limit_keeps_the_trainings_apart(stack_up: TeamStack, trained: list[TrainedRun]) -> None:
    api = stack_up.stack.prefect_api_url
    limit = httpx.get(f"{api}/v2/concurrency_limits/{TRAINING_LIMIT}").json()
    assert limit["limit"] == 1
    response = httpx.post(
        f"{api}/task_runs/filter",
        json={"flow_runs": {"id": {"any_": [r.flow_run_id for r in trained]}}},
    )
    trains = sorted(
        (t for t in response.json() if t["name"].startswith("train")), key=lambda t: t["start_time"]
    )
    assert len(trains) == len(trained) and len({t["flow_run_id"] for t in trains}) == len(trained)
    for earlier, later in itertools.pairwise(trains):
        assert earlier["end_time"] <= later["start_time"]  # each waited for the slot


def _refinery_has(team: TeamStack, command: str) -> bool:
    return team.run("refinery", command, "--help").returncode == 0


def _serve_champion(team: TeamStack, port: int) -> ProcessRecord:
    """`mlflow models serve` of the champion, in its own process group, ready on /ping."""
    log = team.home / "model-serve.log"
    record = start_group(
        ["mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion", "--env-manager", "local",
         "-p", str(port), "-h", HOST],
        env={**team.env, OWNER_ENV: f"{team.home}#model-serve"},
        cwd=team.home, log=log, pid_file=team.home / "model-serve.pid",
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and record.leader_alive():
        try:
            if httpx.get(f"http://{HOST}:{port}/ping", timeout=5).status_code == 200:
                return record
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise AssertionError(f"mlflow models serve did not come up:\n{log.read_text()[-3000:]}")


def test_promote_serve_and_rollback(stack_up: TeamStack, trained: list[TrainedRun]) -> None:
    # ---- the registry half of issue 3: `refinery promote / rollback` (tasks/registry/promotion.py) ----
    assert _refinery_has(stack_up, "promote"), "`refinery promote` is missing from the CLI"
    client = MlflowClient(tracking_uri=stack_up.stack.mlflow_url)
    first, second = sorted((v.version for v in client.search_model_versions(f"name='{MODEL_NAME}'")), key=int)
    for version in (first, second):
        done = stack_up.run("refinery", "promote", MODEL_NAME, "--version", version, "--reason", "e2e")
        assert done.returncode == 0, done.stderr
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == second

    port = free_port()
    record = _serve_champion(stack_up, port)
    try:
        texts = ["I still have not received my new card", "what is the exchange rate"]
        response = httpx.post(f"http://{HOST}:{port}/invocations", json={"inputs": texts}, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        labels = [p["label"] if isinstance(p, dict) else p for p in predictions]
        assert len(labels) == 2 and set(labels) <= set(SAMPLE_CLASSES)
    finally:
        stop_groups([record], OWNER_ENV, f"{stack_up.home}#model-serve")

    done = stack_up.run("refinery", "rollback", MODEL_NAME, "--reason", "e2e")
    assert done.returncode == 0, done.stderr
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == first
    assert client.get_model_version_by_alias(MODEL_NAME, "previous-champion").version == second


def test_make_down_stops_exactly_what_up_started(stack_up: TeamStack, tmp_path: Path) -> None:
    records = _records(stack_up)
    # a bystander in its own group, even carrying a look-alike owner variable, must survive
    bystander = subprocess.Popen(
        ["sleep", "300"], start_new_session=True, env={OWNER_ENV: f"{tmp_path}#prefect"}
    )
    try:
        done = stack_up.make("down")
        assert "stopped: deployments" in done.stdout
        assert bystander.poll() is None
    finally:
        os.kill(bystander.pid, signal.SIGTERM)
        bystander.wait()

    assert _records(stack_up) == {}  # pid files removed
    for name, record in records.items():
        assert not record.leader_alive(), name
        groups = frozenset([record.pid])
        assert owned_processes(OWNER_ENV, owner(stack_up.stack, name), groups) == [], name
    assert not port_in_use(HOST, stack_up.stack.prefect_port)
    assert not port_in_use(HOST, stack_up.stack.mlflow_port)
    assert not port_in_use(HOST, stack_up.stack.postgres_port)
    assert "nothing to stop" in stack_up.make("down").stdout
