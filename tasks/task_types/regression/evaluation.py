"""Scoring a fine-tuned regressor on the test split: metrics in the target's units, the predictions
table for error analysis and a scatter / residual plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types.classification.evaluation import model_logits
from tasks.task_types.regression.metrics import regression_metrics
from tasks.task_types.regression.outputs import scatter_png
from tasks.tokenization.cache import load_tokenized


def outputs_in_units(logits: np.ndarray, config: Any) -> np.ndarray:
    """The model's single output per example in the target's units (its config's mean and std)."""
    mean, std = float(getattr(config, "target_mean", 0.0)), float(getattr(config, "target_std", 1.0))
    return np.asarray(logits, dtype=np.float64).reshape(-1) * std + mean


def load_regressor(model_dir: Path) -> PreTrainedModel:
    """The run's trained one-output model, on the GPU when there is one."""
    if not (model_dir / "config.json").is_file():
        raise RefineryError(f"evaluate: no trained model in {model_dir}; run the train step first")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    if model.config.num_labels != 1:
        raise RefineryError(
            f"evaluate: the model in {model_dir} has {model.config.num_labels} outputs, not the one of a "
            "regressor; run the train step again"
        )
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return model


def plot_predictions(targets: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """Two panels: predicted against true (the diagonal is perfect) and error against true."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    scatter, residual = fig.subplots(1, 2)
    low, high = float(min(targets.min(), predicted.min())), float(max(targets.max(), predicted.max()))
    scatter.scatter(targets, predicted, s=10, alpha=0.6)
    scatter.plot([low, high], [low, high], color="gray", linestyle="--", linewidth=1)
    scatter.set_xlabel("true target")
    scatter.set_ylabel("prediction")
    scatter.set_title(f"Predicted vs true ({len(targets)} test examples)")
    residual.scatter(targets, predicted - targets, s=10, alpha=0.6, color="tab:orange")
    residual.axhline(0.0, color="gray", linestyle="--", linewidth=1)
    residual.set_xlabel("true target")
    residual.set_ylabel("error (prediction - true)")
    residual.set_title("Residuals")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)


def _check_rows(raw: pd.DataFrame, targets: np.ndarray, source: Path) -> None:
    """The tokenized test split and the raw rows must be the same examples in the same order."""
    if len(raw) != len(targets):
        raise RefineryError(
            f"{source}: {len(raw)} rows but the tokenized test split has {len(targets)}; "
            "re-run the tokenize step"
        )
    mismatch = np.flatnonzero(~np.isclose(raw["target"].to_numpy(dtype=np.float64), targets))
    if mismatch.size:
        raise RefineryError(
            f"{source}: row {int(mismatch[0])} column target disagrees with the tokenized test split "
            f"({mismatch.size} rows); re-run the tokenize step"
        )


def prediction_table(raw: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """One row per test example: its texts, target, prediction, error and where it came from."""
    pair = {"text_pair": raw["text_pair"]} if "text_pair" in raw.columns else {}
    return pd.DataFrame(
        {
            "text": raw["text"],
            **pair,
            "target": raw["target"],
            "prediction": np.round(predicted, 6),
            "error": np.round(predicted - raw["target"].to_numpy(dtype=np.float64), 6),
            "source_file": raw["source_file"],
            "source_row": raw["source_row"],
        }
    )


def evaluate_run(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the run's model on its test split; write the predictions and the plot; return the metrics."""
    model = load_regressor(layout.model_dir)
    test = load_tokenized(layout)["test"]
    if len(test) == 0:
        raise RefineryError("evaluate: the test split is empty; nothing to score")
    raw_path = layout.splits_dir / "test.parquet"
    raw = pd.read_parquet(raw_path)
    targets = np.asarray(test.with_format(None)["labels"], dtype=np.float64)
    _check_rows(raw, targets, raw_path)
    logits = model_logits(model, load_tokenizer(layout.model_dir), test, params.evaluate.batch_size)
    predicted = outputs_in_units(logits, model.config)
    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    prediction_table(raw, predicted).to_csv(layout.predictions_csv, index=False)
    plot_predictions(targets, predicted, scatter_png(layout))
    return {**regression_metrics(predicted, targets), "n_test": len(test)}
