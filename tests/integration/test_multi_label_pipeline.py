"""Multi-label classification end to end on a tiny BERT: the Prefect flow validates (JSON Lines label
lists for train, "|"-separated CSV cells for test), trains, chooses thresholds on validation, scores,
registers a pyfunc that answers label lists, then compares a second version with it as champion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from scripts.make_multi_label_example import messages
from tasks.core.layout import RunLayout
from tasks.task_types.multi_label.decision import read_thresholds
from tasks.task_types.multi_label.metrics import multi_label_metrics
from tasks.task_types.multi_label.records import multi_hot
from tests.integration.conftest import SAMPLE_CLASSES, banking_sample, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]
MODEL = "tiny-tags"


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """50 train messages (JSON Lines, label lists) and 16 test messages (CSV, "|" between labels)."""
    folder = tmp_path_factory.mktemp("multi-label-data")
    train = messages(banking_sample(per_class=30), 50, seed=0, intents=SAMPLE_CLASSES)
    train.to_json(folder / "train.jsonl", orient="records", lines=True)
    test = messages(banking_sample(per_class=10, split="test"), 16, seed=1, intents=SAMPLE_CLASSES)
    test.assign(labels=test["labels"].map("|".join)).to_csv(folder / "test.csv", index=False)
    return folder / "train.jsonl", folder / "test.csv"


def _params(root: Path, base_model: Path, files: tuple[Path, Path], **sections: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "test_path": str(files[1]),
        "label_column": "labels",
        "label_delimiter": "|",
        "validation_fraction": 0.2,
    }
    defaults: dict[str, dict[str, Any]] = {
        "data": data,
        "validate": {"min_examples_per_class": 2},
        "train": {"metric_for_best_model": "f1_micro", "epochs": 3},
        "gate": {"thresholds": {"f1_micro": 0.0}, "maximums": {"hamming_loss": 1.0}},
        "register": {"model_name": MODEL},
    }
    for section, values in sections.items():
        defaults[section] = {**defaults.get(section, {}), **values}
    return tiny_params(root, base_model, files[0], task="multi_label_classification", **defaults)


def test_flow_registers_a_label_list_model_and_compares_the_next_with_it(
    tmp_path: Path, tiny_base_model: Path, data_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, tiny_base_model, data_files, multi_label={"threshold": "per_label"})
    result = finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    layout = RunLayout(tmp_path / "run")
    metrics = json.loads(layout.eval_metrics.read_text())
    assert result["gate"]["passed"] is True and metrics["n_test"] == 16
    expected = {"f1_micro", "f1_macro", "f1_weighted", "subset_accuracy", "hamming_loss", "precision_micro"}
    assert expected | {"recall_micro"} <= set(metrics)

    # the thresholds were chosen on validation and stored with the model; evaluate used them
    thresholds = read_thresholds(layout.model_dir)
    record = json.loads((layout.model_dir / "thresholds.json").read_text())
    assert record["rule"] == "per_label" and record["validation_rows"] == 10
    assert list(record["thresholds"].values()) == thresholds and len(thresholds) == len(SAMPLE_CLASSES)
    predictions = pd.read_csv(layout.predictions_csv, keep_default_na=False)
    labels = json.loads((layout.splits_dir / "labels.json").read_text())
    references = multi_hot([json.loads(cell) for cell in predictions["labels"]], labels)
    predicted = [json.loads(cell) for cell in predictions["predicted"]]
    assert multi_label_metrics(references, multi_hot(predicted, labels)) == pytest.approx(
        {k: v for k, v in metrics.items() if k != "n_test"}
    )
    per_label = pd.read_csv(layout.per_class_csv)
    assert per_label["label"].tolist() == labels and per_label["support"].sum() == references.sum()

    # the registered pyfunc answers label lists, at the same thresholds as the evaluation
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking)
    version = client.get_model_version_by_alias(MODEL, "challenger")
    artifacts = {a.path for a in client.list_artifacts(str(version.run_id), "eval")}
    assert {"eval/per_class.csv", "eval/predictions.csv"} <= artifacts
    mlflow.set_tracking_uri(tracking)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@challenger").predict(predictions["text"].tolist())
    assert [list(row) for row in served["labels"]] == predicted
    assert all(set(row) <= set(SAMPLE_CLASSES) for row in served["labels"])

    # the same answers from `refinery predict` (label lists nested in JSON Lines); the version's
    # lineage from `refinery explain`; `refinery reproduce` trains it again to identical metrics
    from tasks.cli.main import main

    inbox = tmp_path / "inbox.csv"
    predictions[["text"]].assign(ticket=range(len(predictions))).to_csv(inbox, index=False)
    store = ["--tracking-uri", tracking]
    assert main(["predict", "--model", f"models:/{MODEL}@challenger", "--input", str(inbox),
                 "--output", str(tmp_path / "tags.jsonl"), *store]) == 0  # fmt: skip
    scored = pd.read_json(tmp_path / "tags.jsonl", lines=True)
    assert scored.columns.tolist() == ["text", "ticket", "labels", "scores"]
    assert [list(row) for row in scored["labels"]] == predicted
    assert main(["explain", f"{MODEL}@challenger", *store]) == 0
    assert "Gate report:" in capsys.readouterr().out
    assert main(["reproduce", MODEL, "--version", str(version.version), *store]) == 0
    reproduced = capsys.readouterr().out
    assert "Result: identical test metrics" in reproduced and "f1_micro" in reproduced, reproduced

    # a second version against the first as champion: the same test rows scored by both, the row
    # bootstrap of micro-F1 and guard rails per label on the (row, label) decisions
    client.set_registered_model_alias(MODEL, "champion", version.version)
    gate = {"champion": {"test": "non_inferiority", "margin": 1.0, "guard_rails": {"min_support": 1}}}
    again = _params(
        tmp_path / "second", tiny_base_model, data_files, train={"seed": 7}, gate=gate,
        register={"tracking_uri": tracking},
    )  # fmt: skip
    second = finetune(params_path=str(again), workdir=str(tmp_path / "second" / "run"))
    compared = json.loads(RunLayout(tmp_path / "second" / "run").comparison_json.read_text())
    assert second["gate"]["passed"] is True and compared["champion_version"] == str(version.version)
    assert compared["bootstrap"]["metric"] == "f1_micro" and compared["group_metric"] == "label_accuracy"
    assert compared["bootstrap"]["champion"] == pytest.approx(metrics["f1_micro"])
    assert compared["group_by"] == "label" and {g["name"] for g in compared["groups"]} == set(SAMPLE_CLASSES)
    assert {g["support"] for g in compared["groups"]} == {16}  # every test row, once per label
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 2
