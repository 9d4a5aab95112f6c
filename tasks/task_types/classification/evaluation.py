"""Scoring a fine-tuned classifier on the test split: metrics, per-class table, confusion matrix.

Metrics go through local `evaluate` modules (tasks/metrics/*), so they work offline. The outputs
are the flat metrics (the step writes `metrics.json`, a DVC metric read by the gate), a per-class
CSV, a confusion matrix PNG and a predictions CSV for error analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from datasets import Dataset
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.metrics.loading import load_metric
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types.classification.plots import plot_per_class_f1
from tasks.tokenization.cache import load_tokenized

ClassIds = Sequence[int] | npt.NDArray[np.integer[Any]]
"""Class ids, one per example: a list or an integer array."""


def _score(name: str, predictions: ClassIds, references: ClassIds, **kwargs: Any) -> Any:
    """`name`'s value: a float, or a list of floats (one per class) when `average=None`."""
    result = load_metric(name).compute(predictions=list(predictions), references=list(references), **kwargs)
    assert result is not None  # only None on non-zero ranks of a distributed evaluation
    return result[name]


def classification_metrics(predictions: ClassIds, references: ClassIds, num_labels: int) -> dict[str, float]:
    """Accuracy and macro/weighted averages over all `num_labels` classes.

    Every class id counts, even one absent from the references: a class that is never right
    scores 0 (zero_division=0) rather than being silently left out of the macro average.
    """
    averaged: dict[str, Any] = {"labels": list(range(num_labels)), "zero_division": 0}
    return {
        "accuracy": _score("accuracy", predictions, references),
        "f1_macro": _score("f1", predictions, references, average="macro", **averaged),
        "f1_weighted": _score("f1", predictions, references, average="weighted", **averaged),
        "precision_macro": _score("precision", predictions, references, average="macro", **averaged),
        "recall_macro": _score("recall", predictions, references, average="macro", **averaged),
    }


def per_class_metrics(predictions: ClassIds, references: ClassIds, label_names: list[str]) -> pd.DataFrame:
    """One row per class, in id order: label, precision, recall, f1, support (test examples)."""
    averaged: dict[str, Any] = {"labels": list(range(len(label_names))), "average": None, "zero_division": 0}
    support = np.bincount(np.asarray(references, dtype=np.int64), minlength=len(label_names))
    return pd.DataFrame(
        {
            "label": label_names,
            "precision": _score("precision", predictions, references, **averaged),
            "recall": _score("recall", predictions, references, **averaged),
            "f1": _score("f1", predictions, references, **averaged),
            "support": support[: len(label_names)],
        }
    )


def model_logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int
) -> np.ndarray:
    """The model's logits (float32, one row per example) in the dataset's row order.

    Rows are batched longest first so each batch pads to similar lengths (dynamic padding);
    results are scattered back to the original positions.
    """
    names = [name for name in tokenizer.model_input_names if name in dataset.column_names]
    rows = dataset.select_columns(names).with_format(None)[:]
    lengths = np.asarray([len(ids) for ids in rows["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    outputs = np.empty((len(order), int(model.config.num_labels or 1)), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = collate([{name: rows[name][i] for name in names} for i in index])
            inputs = {name: tensor.to(model.device) for name, tensor in batch.items()}
            outputs[index] = model(**inputs).logits.float().cpu().numpy()
    return outputs


def predict(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class ids and their softmax probability, in the dataset's row order."""
    logits = torch.from_numpy(model_logits(model, tokenizer, dataset, batch_size))
    best_prob, best_id = torch.softmax(logits, dim=-1).max(dim=-1)
    return best_id.numpy().astype(np.int64), best_prob.numpy().astype(np.float32)


def plot_confusion_matrix(
    predictions: ClassIds, references: ClassIds, label_names: list[str], path: Path
) -> None:
    """Save the row-normalised confusion matrix (true class per row) as a PNG sized to the classes."""
    n = len(label_names)
    counts = confusion_matrix(references, predictions, labels=list(range(n)))
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    side = max(6.0, 0.2 * n + 3.0)  # ~0.2 inch per class keeps 77 tick labels legible
    fontsize = max(6.0, min(10.0, 450.0 / max(n, 1)))
    fig = Figure(figsize=(side, side), layout="constrained")  # no pyplot: no global backend state
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(n), label_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), label_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (row-normalised, {int(counts.sum())} examples)")
    if n <= 20:
        for (row, col), value in np.ndenumerate(rates):
            color = "white" if value > 0.5 else "black"
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=fontsize, color=color)
    fig.colorbar(image, ax=ax, shrink=0.6, label="fraction of true class")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of one split and the per-row predictions they came from."""

    metrics: dict[str, float]
    per_class: pd.DataFrame
    predictions: np.ndarray
    confidence: np.ndarray
    references: np.ndarray


def evaluate_split(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    label_names: list[str],
    batch_size: int,
) -> EvaluationResult:
    """Predict a tokenized split (with a `labels` column) and score it; writes nothing."""
    if len(dataset) == 0:
        raise RefineryError("evaluate: the test split is empty; nothing to score")
    references = np.asarray(dataset.with_format(None)["labels"], dtype=np.int64)
    unknown = np.flatnonzero((references < 0) | (references >= len(label_names)))
    if unknown.size:
        raise RefineryError(
            f"evaluate: test row {int(unknown[0])} has label id {int(references[unknown[0]])}, "
            f"outside the model's {len(label_names)} classes ({unknown.size} rows)"
        )
    predictions, confidence = predict(model, tokenizer, dataset, batch_size)
    return EvaluationResult(
        metrics=classification_metrics(predictions, references, len(label_names)),
        per_class=per_class_metrics(predictions, references, label_names),
        predictions=predictions,
        confidence=confidence,
        references=references,
    )


def _load_model(model_dir: Path) -> tuple[PreTrainedModel, list[str]]:
    if not (model_dir / "config.json").is_file():
        raise RefineryError(f"evaluate: no trained model in {model_dir}; run the train step first")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    label_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    return model, label_names


def _check_rows(raw: pd.DataFrame, references: np.ndarray, source: Path) -> None:
    """The tokenized test split and the raw rows must be the same examples in the same order."""
    if len(raw) != len(references):
        raise RefineryError(
            f"{source}: {len(raw)} rows but the tokenized test split has {len(references)}; "
            "re-run the tokenize step"
        )
    mismatch = np.flatnonzero(raw["label_id"].to_numpy(dtype=np.int64) != references)
    if mismatch.size:
        raise RefineryError(
            f"{source}: row {int(mismatch[0])} column label_id disagrees with the tokenized test split "
            f"({mismatch.size} rows); re-run the tokenize step"
        )


def evaluate_run(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the run's model on its test split; write the per-class table, confusion matrix and
    predictions; return the metrics."""
    model, label_names = _load_model(layout.model_dir)
    tokenizer = load_tokenizer(layout.model_dir)
    test = load_tokenized(layout)["test"]
    raw_path = layout.splits_dir / "test.parquet"
    raw = pd.read_parquet(raw_path)
    _check_rows(raw, np.asarray(test.with_format(None)["labels"], dtype=np.int64), raw_path)
    result = evaluate_split(model, tokenizer, test, label_names, params.evaluate.batch_size)

    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {**result.metrics, "n_test": len(test)}
    result.per_class.to_csv(layout.per_class_csv, index=False, float_format="%.4f")
    plot_confusion_matrix(result.predictions, result.references, label_names, layout.confusion_png)
    plot_per_class_f1(result.per_class, layout.per_class_f1_png)
    names = np.asarray(label_names, dtype=object)
    predictions = pd.DataFrame(
        {
            "text": raw["text"],
            **({"text_pair": raw["text_pair"]} if "text_pair" in raw.columns else {}),
            "label": raw["label"],
            "prediction": names[result.predictions],
            "confidence": np.round(result.confidence, 4),
            "source_file": raw["source_file"],
            "source_row": raw["source_row"],
        }
    )
    predictions.to_csv(layout.predictions_csv, index=False)
    return metrics
