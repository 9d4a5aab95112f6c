"""`task: regression`: metrics checked by hand, the target's parsing, scale and bins, the data
contract naming file:row and value, and the params it refuses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tasks.core.config import DataConfig, Params, ValidateConfig
from tasks.core.errors import ConfigError
from tasks.task_types import task_type_for
from tasks.task_types.regression.metrics import regression_metrics
from tasks.task_types.regression.records import as_number, split_examples, target_problem, target_scale
from tasks.task_types.regression.validation import validate_frames
from tasks.validation.report import ValidationResult
from tests.fixtures import build_tiny_classifier

DATA = DataConfig(text_column="text", label_column="score", test_path=None)
PAIRS = DataConfig(text_column="text", text_pair_column="other", label_column="score", test_path=None)


def test_metrics_match_the_hand_computed_values() -> None:
    # errors 0, -1, 1, -1; targets' mean 2.75, SS_tot 8.75; Pearson 5.5 / sqrt(5 * 8.75);
    # ranks of the targets 1, 3, 2, 4: Spearman 1 - 6 * 2 / (4 * 15)
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 5.0]))
    assert metrics["mse"] == pytest.approx(0.75)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.75))
    assert metrics["mae"] == pytest.approx(0.75)
    assert metrics["r2"] == pytest.approx(1.0 - 3.0 / 8.75)
    assert metrics["pearson"] == pytest.approx(5.5 / math.sqrt(43.75))
    assert metrics["spearman"] == pytest.approx(0.8)
    assert metrics["neg_mae"] == pytest.approx(-0.75)  # what the champion comparison bootstraps


def test_a_constant_prediction_correlates_with_nothing() -> None:
    metrics = regression_metrics(np.full(3, 2.0), np.array([1.0, 2.0, 4.0]))
    assert metrics["pearson"] == metrics["spearman"] == 0.0
    # errors 1, 0, 2; targets' mean 7/3, SS_tot 42/9, SS_res 5
    assert metrics["mae"] == pytest.approx(1.0) and metrics["r2"] == pytest.approx(1.0 - 45.0 / 42.0)


def test_target_cells_are_parsed_as_numbers() -> None:
    assert [as_number(v) for v in (" 0.5", "1e-3", 3, 2.5, np.int64(4))] == [0.5, 0.001, 3.0, 2.5, 4.0]
    assert [as_number(v) for v in ("high", True, None, "")] == [None, None, None, None]
    assert [target_problem(v) for v in ("0.5", "abc", "inf", float("nan"), None)] == [
        "ok", "not a number", "not finite", "missing", "missing",
    ]  # fmt: skip


def test_the_scale_is_the_train_targets_mean_and_std() -> None:
    assert target_scale(np.array([1.0, 3.0])) == (2.0, 1.0)
    assert target_scale(np.array([5.0, 5.0])) == (5.0, 1.0)  # constant: nothing divides by zero


def _frame(file: str, scores: list[object], pair: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame({"text": [f"text number {i}" for i in range(len(scores))], "score": scores})
    if pair:
        frame["other"] = [f"second text {i}" for i in range(len(scores))]
    frame["source_file"] = file
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


def test_splits_hold_float_targets_and_stratify_on_their_quantile_bins() -> None:
    scores = [0.0] * 20 + [0.5] * 20 + [1.0] * 20
    splits = split_examples({"train": _frame("data/train.csv", scores, pair=True)}, PAIRS)
    assert splits.labels == ["score"]
    assert {"text", "text_pair", "target", "label"} <= set(splits.train.columns)
    assert splits.train["target"].dtype == np.float64
    assert sorted(splits.test["target"].value_counts().tolist()) == [4, 4, 4]  # stratified by bin
    assert splits.test.groupby("label")["target"].nunique().max() == 1  # one level per bin here


def _failed(result: ValidationResult) -> dict[str, list[tuple[str, int | None, str | None]]]:
    return {
        o.name: [(r.file, r.row, r.value) for r in o.offending] for o in result.expectations if not o.success
    }


def test_clean_targets_pass() -> None:
    frames = {
        "train": _frame("data/train.csv", [0.1, 0.5, 0.9, 0.3]),
        "test": _frame("data/test.csv", ["0.2"]),
    }
    frames["test"]["text"] = "a test text"
    result = validate_frames(frames, DATA, ValidateConfig())
    assert result.success, result.failure_message(5)
    assert result.statistics["target_mean_train"] == pytest.approx(0.45)


def test_non_numeric_and_non_finite_targets_are_named_with_file_row_and_value() -> None:
    train = _frame("data/train.csv", ["0.5", "0.7", "high", "inf", None])
    result = validate_frames({"train": train}, DATA, ValidateConfig())
    failed = _failed(result)
    assert failed["target_is_finite_number"] == [("data/train.csv", 3, "high"), ("data/train.csv", 4, "inf")]
    assert failed["target_not_null"] == [("data/train.csv", 5, None)]
    message = result.failure_message(5)
    assert "target_is_finite_number on data/train.csv column 'score' (data/train.csv:3 'high'; " in message


def test_a_constant_train_target_and_a_missing_column_are_refused() -> None:
    result = validate_frames({"train": _frame("data/train.csv", [2.0, 2.0, "2"])}, DATA, ValidateConfig())
    assert set(_failed(result)) == {"target_varies"}
    assert "train needs at least two values in 'score'" in result.failure_message(5)
    frames = {"train": _frame("data/train.csv", [1.0, 2.0]).rename(columns={"score": "rating"})}
    missing = validate_frames(frames, DATA, ValidateConfig())
    assert (
        "target_column_present on data/train.csv column 'score' (column missing)"
        in missing.failure_message(5)
    )


def test_pairs_are_checked_and_leakage_is_of_whole_pairs() -> None:
    train = _frame("data/train.csv", [0.1, 0.5, 0.9], pair=True)
    test = _frame("data/test.csv", [0.2, 0.4], pair=True)
    test["other"] = ["a test's second text", "another one"]
    test.loc[0, "text"] = train.loc[0, "text"]  # one text seen in train: another example
    assert validate_frames({"train": train, "test": test}, PAIRS, ValidateConfig()).success
    test.loc[1, ["text", "other"]] = train.loc[2, ["text", "other"]].to_numpy()
    train.loc[1, "other"] = " "
    failed = _failed(validate_frames({"train": train, "test": test}, PAIRS, ValidateConfig()))
    assert failed["text_pair_not_empty"] == [("data/train.csv", 2, " ")]
    assert [(f, r) for f, r, _ in failed["no_train_test_leakage"]] == [("data/test.csv", 2)]


def test_the_scaled_targets_collator_standardises_the_batch(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from tasks.task_types.regression.training import ScaledTargets

    tokenizer = AutoTokenizer.from_pretrained(str(build_tiny_classifier(tmp_path, ["score"])))
    collate = ScaledTargets(tokenizer, (2.0, 4.0))
    batch = collate([{"input_ids": [2, 5, 3], "labels": 10.0}, {"input_ids": [2, 3], "labels": 0.0}])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [2.0, -0.5]
    assert batch["input_ids"].shape == (2, 3)


def test_params_a_regression_cannot_run_are_refused_with_the_key() -> None:
    base = {"task": "regression", "train": {"metric_for_best_model": "rmse"}}
    with pytest.raises(
        ConfigError, match=r"gate\.thresholds\.accuracy: task regression reports no such metric"
    ):
        task_type_for(Params.model_validate(base))  # the classifier's default thresholds
    gated = {**base, "gate": {"thresholds": {"pearson": 0.5}, "maximums": {"rmse": 0.3}}}
    assert task_type_for(Params.model_validate(gated)).name == "regression"
    wrong = {**gated, "train": {"metric_for_best_model": "accuracy"}}
    with pytest.raises(ConfigError, match=r"train\.metric_for_best_model must be one of rmse"):
        task_type_for(Params.model_validate(wrong))
    champion = {**gated, "gate": {**gated["gate"], "champion": {"metric": "accuracy"}}}
    with pytest.raises(ConfigError, match=r"gate\.champion\.metric must be neg_mae"):
        task_type_for(Params.model_validate(champion))
