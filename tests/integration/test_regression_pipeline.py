"""Text pairs and regression end to end on a tiny BERT: a classifier of text pairs and a regressor of
pair relatedness go through the Prefect flow, are registered as served encoders that answer for both
texts, and a second regression version is compared with the first as champion."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from scripts.make_pairs_example import sample_pairs as classification_pairs
from scripts.make_pairs_example import texts_by_intent
from scripts.make_regression_example import sample_pairs as scored_pairs
from tasks.core.config import load_params
from tasks.core.layout import RunLayout
from tasks.task_types.classification.comparison import compare_champion
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]

QUESTIONS = {"text_column": "question1", "text_pair_column": "question2", "label_column": "label"}
SCORED = {"text_column": "text1", "text_pair_column": "text2", "label_column": "score"}
REGRESSION = {
    "train": {"metric_for_best_model": "rmse", "max_steps": 12},
    "gate": {"thresholds": {"pearson": -1.0}, "maximums": {"rmse": 10.0}},
    "register": {"model_name": "tiny-relatedness"},
}


def _pairs_csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "pairs.csv"
    frame.to_csv(path, index=False)
    return path


def test_pair_classifier_is_trained_scored_and_served_on_both_texts(
    tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_by_intent(banking_sample(per_class=20))
    pairs = classification_pairs(texts, {"same_intent": 30, "shared_word": 15, "unrelated": 15}, seed=0)
    data = {**QUESTIONS, "name": "banking77-pairs"}
    params = tiny_params(
        tmp_path, tiny_base_model, _pairs_csv(tmp_path, pairs), data=data,
        train={"max_steps": 8}, register={"model_name": "tiny-pairs"},
    )  # fmt: skip
    result = finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    layout = RunLayout(tmp_path / "run")
    assert result["gate"]["passed"] is True
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    assert list(test.columns[:2]) == ["text", "text_pair"] and len(test) == 12
    predictions = pd.read_csv(layout.predictions_csv)
    assert predictions["text_pair"].tolist() == test["text_pair"].tolist()
    assert set(predictions["prediction"]) <= {"duplicate", "different"}

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/tiny-pairs@challenger")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["text", "text_pair"]
    answered = model.predict(test[["text", "text_pair"]])
    # the served model reads both texts as evaluation did: the same label for every test pair
    assert answered["label"].tolist() == predictions["prediction"].tolist()
    assert np.allclose(answered["score"], predictions["confidence"], atol=1e-3)

    # the registered version as this run's champion: scored on both texts through its pyfunc, it
    # answers as the challenger did, so the paired difference is nil
    stats = compare_champion(load_params(params), layout, "models:/tiny-pairs/1", "accuracy")
    assert stats.bootstrap.delta == 0.0 and stats.bootstrap.low == stats.bootstrap.high == 0.0
    champion = pd.read_csv(layout.champion_predictions_csv)
    assert champion["text_pair"].tolist() == test["text_pair"].tolist()
    assert champion["prediction"].tolist() == predictions["prediction"].tolist()

    # `refinery predict` on a file of pairs: both columns named, the answers as the pyfunc's; a pair
    # model refuses a file scored without the second column, in one line
    from tasks.cli.main import main

    inbox = tmp_path / "inbox.csv"
    test[["text", "text_pair"]].rename(columns={"text": "q1", "text_pair": "q2"}).to_csv(inbox, index=False)
    model_option = [
        "--model",
        "models:/tiny-pairs@challenger",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    out = tmp_path / "same.csv"
    assert main(["predict", *model_option, "--input", str(inbox), "--output", str(out),
                 "--text-column", "q1", "--text-pair-column", "q2"]) == 0  # fmt: skip
    assert pd.read_csv(out)["label"].tolist() == answered["label"].tolist()
    assert (
        main(["predict", *model_option, "--input", str(inbox), "--output", str(out), "--text-column", "q1"])
        == 1
    )
    assert (
        "reads text pairs: name the second text's column with --text-pair-column" in capsys.readouterr().err
    )


def test_regressor_is_registered_served_in_target_units_and_compared_with_its_champion(
    tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_by_intent(banking_sample(per_class=20))
    pairs = scored_pairs(texts, per_level=20, seed=0)  # 3 levels among the sample's 4 intents: 0, 0.25, 1
    data = {**SCORED, "name": "banking77-relatedness"}
    csv = _pairs_csv(tmp_path, pairs)
    params = tiny_params(tmp_path, tiny_base_model, csv, task="regression", data=data, **REGRESSION)
    result = finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    layout = RunLayout(tmp_path / "run")
    metrics = json.loads(layout.eval_metrics.read_text())
    assert result["gate"]["passed"] is True and metrics["n_test"] == 12
    assert {"rmse", "mae", "mse", "r2", "pearson", "spearman"} <= set(metrics)
    predictions = pd.read_csv(layout.predictions_csv)
    assert list(predictions.columns[:5]) == ["text", "text_pair", "target", "prediction", "error"]
    assert np.sqrt(np.mean(predictions["error"] ** 2)) == pytest.approx(metrics["rmse"], abs=1e-4)
    assert (layout.eval_dir / "predicted_vs_true.png").is_file()

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    served = mlflow.pyfunc.load_model("models:/tiny-relatedness@challenger").predict(
        test[["text", "text_pair"]]
    )
    # in the target's units (the train mean and std are logged with the model), as evaluation scored
    assert np.allclose(served["prediction"], predictions["prediction"], atol=1e-4)

    # a second version against the first as champion: the same test rows scored by both, a paired
    # bootstrap of the negated absolute error, and guard rails per level (the slice column)
    client = MlflowClient(tracking_uri=tracking)
    client.set_registered_model_alias("tiny-relatedness", "champion", "1")
    champion = {
        "test": "non_inferiority",
        "margin": 1.0,
        "slice_column": "level",
        "guard_rails": {"min_support": 1},
    }
    gate = {**REGRESSION["gate"], "champion": champion}
    (tmp_path / "second").mkdir()
    again = tiny_params(
        tmp_path / "second", tiny_base_model, csv, task="regression", data=data,
        **{**REGRESSION, "train": {**REGRESSION["train"], "seed": 7}, "gate": gate,
           "register": {**REGRESSION["register"], "tracking_uri": tracking}},
    )  # fmt: skip
    second = finetune(params_path=str(again), workdir=str(tmp_path / "second" / "run"))
    compared = json.loads(RunLayout(tmp_path / "second" / "run").comparison_json.read_text())
    assert second["gate"]["passed"] is True and compared["champion_version"] == "1"
    assert compared["bootstrap"]["metric"] == compared["group_metric"] == "neg_mae"
    assert compared["bootstrap"]["champion"] == pytest.approx(-metrics["mae"], abs=1e-4)
    assert compared["mcnemar"] is None and compared["overlap_rows"] == 0
    assert {g["name"] for g in compared["groups"]} == set(pairs["level"])

    # `refinery models` shows a regressor's own headline metrics, not a classifier's accuracy
    from tasks.cli.main import main

    capsys.readouterr()
    assert main(["models", "tiny-relatedness", "--tracking-uri", tracking]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:4] == ["version", "aliases", "rmse", "mae"]
    assert table[-1].split()[2] == f"{metrics['rmse']:.4f}"  # the oldest row: version 1
