"""The whole flow on a tiny model and a ~200-row sample, on a real MLflow store and Prefect API."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from tasks.cli.main import main as refinery
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateFailed
from tests.integration.conftest import SAMPLE_CLASSES, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]


def _client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_flow_registers_a_challenger_that_predicts_label_names(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv)
    result = finetune(params_path=str(params), workdir=str(tmp_path / "run"))

    layout = RunLayout(tmp_path / "run")
    for path in (layout.validation_json, layout.validation_md, layout.confusion_png, layout.predictions_csv):
        assert path.is_file(), path
    metrics = json.loads(layout.eval_metrics.read_text())
    assert metrics["n_test"] == 40 and 0.0 <= metrics["accuracy"] <= 1.0
    assert result["gate"]["passed"] is True

    client = _client(tmp_path)
    version = client.get_model_version_by_alias("tiny-intent", "challenger")
    assert result["registration"]["version"] == str(version.version)
    assert version.tags["gate.decision"] == "passed"
    assert {"git_commit", "data_hash", "prefect_flow_run_id"} <= set(version.tags)
    assert version.tags["prefect_flow_run_id"] not in ("", "None")

    run = client.get_run(version.run_id)
    assert run.data.params["train.learning_rate"] == "0.005"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.tags["gate.decision"] == "passed"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(history) >= 2  # logged per step, not only the final value
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"banking77-sample"}

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/tiny-intent@challenger")
    predicted = model.predict(["I still have not received my new card", "what is the exchange rate"])
    labels = list(predicted["label"]) if hasattr(predicted, "columns") else list(predicted)
    assert len(labels) == 2 and set(labels) <= set(SAMPLE_CLASSES)


def test_summary_artifact_and_cli_summary(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv)
    code = refinery(
        ["run", "--params", str(params), "--workdir", str(tmp_path / "run"), "--set", "train.epochs=1"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Test metrics (40 examples)" in out and "Gate: PASSED" in out
    assert "models:/tiny-intent/1" in out and "mlflow ui --backend-store-uri" in out

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts()
    summary = [a for a in artifacts if a.key == "finetune-summary"]
    assert summary and "Gate: **passed**" in str(summary[0].data)


def test_failed_gate_registers_nothing_and_fails_visibly(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, gate={"thresholds": {"accuracy": 0.999}})
    with pytest.raises(GateFailed, match=r"gate failed: accuracy 0\.\d+ < 0\.9990"):
        finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    client = _client(tmp_path)
    assert client.search_registered_models() == []
    runs = client.search_runs([client.get_experiment_by_name("refinery-tests").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["gate.decision"] == "failed"
    assert "accuracy" in runs[0].data.tags["gate.reasons"]


def test_failed_gate_can_complete_without_registering(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    params = tiny_params(
        tmp_path, tiny_base_model, sample_csv, gate={"thresholds": {"accuracy": 0.999}, "on_fail": "complete"}
    )
    result = finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    assert result["gate"]["passed"] is False and result["registration"]["registered"] is False
    assert _client(tmp_path).search_registered_models() == []


def test_rerun_reuses_the_tokenization_cache(tmp_path: Path, tiny_base_model: Path, sample_csv: Path) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, train={"max_steps": 2})
    from tasks.core.config import load_params
    from tasks.steps import tokenization

    loaded = load_params(params)
    finetune(params_path=str(params), workdir=str(tmp_path / "a"))
    first = tokenization.run_step(loaded, RunLayout(tmp_path / "a"))
    assert first["cache_hit"] is True
    changed = load_params(params, {"tokenize.max_length": 16})
    assert tokenization.run_step(changed, RunLayout(tmp_path / "a"))["cache_hit"] is False
