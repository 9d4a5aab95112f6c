"""A retried or re-run register step completes its own MLflow run and version, never a second one."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.models.model import ModelInfo

from tasks.core.config import Params, parse_params
from tasks.core.errors import RefineryError
from tasks.gating.decision import GateDecision
from tasks.lineage.record import current_lineage
from tasks.registry import registration
from tasks.steps.registration import RETRY_PARAMS, register_step
from tasks.task_types import task_type_for
from tests.integration.conftest import TEXTS, build_run_dir

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]

PASSED = GateDecision(True, ["accuracy 0.9000 >= 0.5000"], {"accuracy": {"value": 0.9, "threshold": 0.5}})


def _params(tmp_path: Path, **register: Any) -> Params:
    train_csv = tmp_path / "data" / "train.csv"
    train_csv.parent.mkdir(exist_ok=True)
    train_csv.write_text("text,category\n" + "\n".join(f"{t},x" for t in TEXTS) + "\n", encoding="utf-8")
    raw = {
        "data": {"name": "banking77", "train_path": str(train_csv), "test_path": None},
        "gate": {"on_fail": "complete"},
        "register": {
            "model_name": "tiny-intent",
            "experiment": "retry-tests",
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            **register,
        },
    }
    return parse_params(raw)


def _versions(client: MlflowClient) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions("name = 'tiny-intent'"))


def test_a_step_retried_after_the_version_was_created_completes_it(tmp_path: Path) -> None:
    params = _params(tmp_path, promotion="auto")
    layout = build_run_dir(tmp_path / "run", PASSED)
    from tasks.steps.registration import log_and_register

    # the first attempt stopped after the version was created: no release, no registration.json
    first = log_and_register(params, layout, PASSED, current_lineage(params, layout=layout))
    client = MlflowClient(tracking_uri=params.register_.tracking_uri)
    assert "gate.report" not in client.get_model_version("tiny-intent", "1").tags

    retried = register_step(params, layout)
    rerun = register_step(params, layout)  # the same command again, after it succeeded

    assert (retried.run_id, retried.version) == (first.run_id, "1") and rerun == retried
    assert _versions(client) == ["1"]
    experiment = client.get_experiment_by_name("retry-tests")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["refinery.registration"] == "complete"
    version = client.get_model_version("tiny-intent", "1")
    assert version.tags["gate.report"] == f"runs:/{first.run_id}/gate_report.md"
    assert version.tags["promoted_by"] == "refinery (register.promotion: auto)"
    assert str(client.get_registered_model("tiny-intent").aliases["champion"]) == "1"
    history = client.get_metric_history(first.run_id, "eval_accuracy")
    assert [(m.step, m.value) for m in history] == [(4, 0.33), (8, 0.67)]  # not logged twice


def test_a_model_log_interrupted_by_the_store_is_logged_once_on_retry(tmp_path: Path) -> None:
    params = _params(tmp_path)
    layout = build_run_dir(tmp_path / "run", PASSED)
    lineage = current_lineage(params, layout=layout)
    task_type = task_type_for(params)

    def store_went_away(_card: str) -> ModelInfo:
        raise ConnectionRefusedError(111, "Connection refused")

    def attempt(log_model: Any) -> registration.RegistrationResult:
        return registration.log_and_register(
            params,
            layout,
            PASSED,
            lineage,
            task_type.evaluation_files(layout),
            ("A tiny model.", "None."),
            log_model,
        )

    with pytest.raises(ConnectionRefusedError):
        attempt(store_went_away)
    result = attempt(lambda card: task_type.log_model(params, layout, card))

    client = MlflowClient(tracking_uri=params.register_.tracking_uri)
    assert _versions(client) == ["1"] and result.version == "1"
    experiment = client.get_experiment_by_name("retry-tests")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_id for run in runs] == [result.run_id]
    assert runs[0].info.status == "FINISHED"
    assert len(client.search_logged_models([experiment.experiment_id])) == 1


def test_a_store_that_stays_away_ends_with_how_to_register_without_retraining(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    params = _params(tmp_path, tracking_uri=uri, retry_attempts=2, retry_wait_seconds=0.1)
    layout = build_run_dir(tmp_path / "run", PASSED)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        with pytest.raises(RefineryError) as raised:
            register_step(params, layout)
    finally:
        monkeypatch.undo()

    message = str(raised.value)
    assert "\n" not in message and "unavailable after 2 attempts" in message
    assert f"the model is trained in {layout.model_dir}" in message
    saved = layout.root / RETRY_PARAMS
    assert f"python -m tasks.steps.registration --params {saved} --workdir {layout.root}" in message
    assert parse_params(yaml.safe_load(saved.read_text(encoding="utf-8"))) == params
    assert not layout.registration_json.exists()
