"""Registration on a real MLflow store in tmp_path, from a hand-built run directory and a tiny model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from tasks.core.config import Params, parse_params
from tasks.gating.decision import GateDecision, GateFailed
from tasks.lineage.record import Lineage, current_lineage
from tasks.registry.registration import RegistrationResult
from tasks.steps.registration import log_and_register, run_step
from tests.integration.conftest import LABELS, TEXTS, build_run_dir

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]

PASSED = GateDecision(True, ["accuracy 0.9000 >= 0.5000"], {"accuracy": {"value": 0.9, "threshold": 0.5}})
FAILED = GateDecision(False, ["accuracy 0.2000 < 0.5000"], {"accuracy": {"value": 0.2, "threshold": 0.5}})


def _params(tmp_path: Path, **register: Any) -> Params:
    train_csv = tmp_path / "data" / "train.csv"
    train_csv.parent.mkdir(exist_ok=True)
    train_csv.write_text("text,category\n" + "\n".join(f"{t},x" for t in TEXTS) + "\n", encoding="utf-8")
    raw = {
        "data": {
            "name": "banking77",
            "train_path": str(train_csv),
            "test_path": None,
            "license": "CC BY 4.0; BANKING77 dataset by PolyAI",
        },
        "gate": {"on_fail": register.pop("on_fail", "complete")},
        "register": {
            "model_name": "tiny-intent",
            "experiment": "registry-tests",
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            **register,
        },
    }
    return parse_params(raw)


def _lineage(params: Params, tmp_path: Path) -> Lineage:
    return current_lineage(params, flow_run_id="flow-run-123", repo_dir=tmp_path)


def _only_run(client: MlflowClient, experiment: str) -> Run:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    experiment_id = found.experiment_id
    runs = client.search_runs([experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_passed_gate_registers_a_challenger_that_predicts_label_names(tmp_path: Path) -> None:
    params = _params(tmp_path)
    layout = build_run_dir(tmp_path / "run", PASSED)
    lineage = _lineage(params, tmp_path)
    assert lineage.git_commit == "unknown" and lineage.data_hash.startswith("md5:")

    result = log_and_register(params, layout, PASSED, lineage)

    assert result.registered and result.version == "1"
    assert (
        result.model_uri == "models:/tiny-intent/1" and result.alias_uri == "models:/tiny-intent@challenger"
    )
    client = MlflowClient(tracking_uri=params.register_.tracking_uri)
    version = client.get_model_version_by_alias("tiny-intent", "challenger")
    assert str(version.version) == result.version and version.run_id == result.run_id
    assert version.tags == {**lineage.tags(), "gate.decision": "passed"}
    assert version.tags["prefect_flow_run_id"] == "flow-run-123"

    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.experiment_id == result.experiment_id
    assert run.data.params["train.learning_rate"] == "0.0003"
    assert run.data.params["gate.thresholds.accuracy"] == "0.85"
    assert run.data.metrics["test_accuracy"] == 0.5 and run.data.metrics["test_n_test"] == 6
    assert run.data.metrics["train.best_validation_accuracy"] == 0.67
    history = client.get_metric_history(result.run_id, "eval_accuracy")
    assert [(m.step, m.value) for m in history] == [(4, 0.33), (8, 0.67)]
    assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [2, 6]
    tags = run.data.tags
    assert tags["gate.decision"] == "passed" and tags["gate.reasons"] == "accuracy 0.9000 >= 0.5000"
    assert tags["git_commit"] == "unknown" and tags["data_hash"] == lineage.data_hash
    assert tags["prefect_flow_run_id"] == "flow-run-123"
    assert tags["registered_version"] == "tiny-intent/1"

    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    for folder in ("validation", "eval", "train", "splits"):
        artifacts |= {a.path for a in client.list_artifacts(result.run_id, folder)}
    assert {
        "gate.json",
        "model_card.md",
        "validation/result.json",
        "validation/report.md",
        "eval/confusion_matrix.png",
        "eval/predictions.csv",
        "eval/per_class.csv",
        "eval/per_class_f1.png",
        "train/training_curve.png",
    } <= artifacts
    assert run.inputs is not None
    inputs = {tag.key: tag.value for i in run.inputs.dataset_inputs for tag in i.tags}
    assert inputs["data_hash"] == lineage.data_hash
    contexts = {
        tag.value: dataset_input.dataset
        for dataset_input in run.inputs.dataset_inputs
        for tag in dataset_input.tags
        if tag.key == "mlflow.data.context"
    }
    assert set(contexts) == {"train", "validation", "test"}
    assert contexts["train"].name == "banking77"
    assert json.loads(str(contexts["train"].profile))["num_rows"] == 12
    assert params.data.train_path in contexts["train"].source

    card = layout.model_card.read_text(encoding="utf-8")
    assert "- Licence: CC BY 4.0; BANKING77 dataset by PolyAI" in card
    assert "| refund |" not in card and "| card_arrival | 0.5000 | 0.4000 | 0.4400 | 2 |" in card
    assert "- `minilm`: all-MiniLM-L6-v2 by sentence-transformers, Apache-2.0" in card
    assert "steps" in card and "Hardware:" in card
    assert "| `accuracy` | 0.5000 |" in card and "| `train.learning_rate` | 0.0003 |" in card
    assert "## Gate: passed" in card and lineage.data_hash in card

    model = mlflow.pyfunc.load_model(f"models:/tiny-intent@{params.register_.alias}")
    predictions = model.predict(["my card was stolen", "what is the exchange rate"])
    assert isinstance(predictions, pd.DataFrame), type(predictions)
    assert list(predictions.columns) == ["label", "score"] and len(predictions) == 2
    assert set(predictions["label"]) <= set(LABELS)


def test_alias_moves_to_the_newest_version_and_a_failed_alias_leaves_no_version(tmp_path: Path) -> None:
    params = _params(tmp_path)
    layout = build_run_dir(tmp_path / "run", PASSED)
    first = log_and_register(params, layout, PASSED, _lineage(params, tmp_path))
    again = log_and_register(params, layout, PASSED, _lineage(params, tmp_path))  # same run: same version
    other = build_run_dir(tmp_path / "run-2", PASSED)
    second = log_and_register(params, other, PASSED, _lineage(params, tmp_path))
    client = MlflowClient(tracking_uri=params.register_.tracking_uri)
    assert (first.version, again.version, second.version) == ("1", "1", "2")
    assert again.run_id == first.run_id and second.run_id != first.run_id
    assert str(client.get_model_version_by_alias("tiny-intent", "challenger").version) == "2"

    reserved = _params(tmp_path, alias="v9")  # MLflow refuses aliases shaped like versions
    with pytest.raises(MlflowException, match="reserved"):
        log_and_register(reserved, layout, PASSED, _lineage(reserved, tmp_path))
    versions = client.search_model_versions("name = 'tiny-intent'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    failed_runs = client.search_runs([first.experiment_id], filter_string="attributes.status = 'FAILED'")
    assert len(failed_runs) == 1


def test_failed_gate_logs_the_run_and_registers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_uri = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_uri)  # team mode: the environment wins over params
    params = _params(tmp_path)
    layout = build_run_dir(tmp_path / "run", FAILED)
    uri_before = mlflow.get_tracking_uri()

    result = run_step(params, layout)

    assert os.environ["MLFLOW_TRACKING_URI"] == team_uri and mlflow.get_tracking_uri() == uri_before
    assert not result.registered and result.version is None and result.model_uri is None
    assert RegistrationResult.from_json(layout.registration_json.read_text(encoding="utf-8")) == result
    client = MlflowClient(tracking_uri=team_uri)
    run = _only_run(client, "registry-tests")
    assert run.info.run_id == result.run_id
    assert run.data.tags["gate.decision"] == "failed"
    assert run.data.tags["gate.reasons"] == "accuracy 0.2000 < 0.5000"
    assert run.data.metrics["test_f1_macro"] == 0.4
    assert "model_card.md" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "## Gate: failed" in layout.model_card.read_text(encoding="utf-8")
    assert client.search_registered_models() == []
    assert client.search_logged_models([result.experiment_id]) == []
    assert not (tmp_path / "mlflow.db").exists()  # params.register.tracking_uri was not used


def test_on_fail_fail_raises_after_logging_the_reasons(tmp_path: Path) -> None:
    params = _params(tmp_path, on_fail="fail")
    layout = build_run_dir(tmp_path / "run", FAILED)

    with pytest.raises(GateFailed, match=r"^gate failed: accuracy 0\.2000 < 0\.5000$"):
        run_step(params, layout)

    client = MlflowClient(tracking_uri=params.register_.tracking_uri)
    run = _only_run(client, "registry-tests")
    assert run.info.status == "FINISHED"
    assert run.data.tags["gate.decision"] == "failed"
    assert run.data.tags["gate.reasons"] == "accuracy 0.2000 < 0.5000"
    assert client.search_registered_models() == []
    assert json.loads(layout.registration_json.read_text(encoding="utf-8"))["run_id"] == run.info.run_id


def test_lineage_reads_git_and_hashes_the_data_read_never_data_dvc(tmp_path: Path) -> None:
    params = _params(tmp_path)
    (tmp_path / "data.dvc").write_text(
        "outs:\n- md5: 02b6cfdf486795fe109da9d564fdc3cd.dir\n  size: 10\n  nfiles: 3\n"
        "  hash: md5\n  path: data\n",
        encoding="utf-8",
    )
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "data.dvc"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "data"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout

    lineage = current_lineage(params, repo_dir=tmp_path)

    # data.dvc tracks other data: the hash is of the train file this run read
    train_md5 = hashlib.md5((tmp_path / "data" / "train.csv").read_bytes()).hexdigest()
    assert lineage.data_hash == f"md5:{train_md5}" == lineage.data_hash_train
    assert lineage.tags()["data_hash_test"] == "none"
    assert lineage.git_commit == head.strip() and lineage.git_dirty  # data/train.csv is untracked
    assert lineage.prefect_flow_run_id is None and lineage.tags()["prefect_flow_run_id"] == "none"
    assert lineage.params_hash == current_lineage(_params(tmp_path)).params_hash
    assert lineage.params_hash != current_lineage(_params(tmp_path, alias="champion")).params_hash
