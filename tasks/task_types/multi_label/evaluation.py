"""Scoring a fine-tuned multi-label classifier on the test split: the metrics at the thresholds stored
with the model, a per-label table (precision, recall, F1, support), its F1 chart and a predictions
CSV (label lists as JSON) for error analysis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types.classification.plots import plot_per_class_f1
from tasks.task_types.multi_label.decision import read_thresholds
from tasks.task_types.multi_label.metrics import multi_label_metrics, per_label_table
from tasks.task_types.multi_label.records import TARGETS
from tasks.tokenization.cache import load_tokenized


def predict_probabilities(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int
) -> np.ndarray:
    """Sigmoid probabilities (rows × labels) in the dataset's row order; batched longest first so
    each batch pads to similar lengths, then put back in place."""
    names = [name for name in tokenizer.model_input_names if name in dataset.column_names]
    rows = dataset.select_columns(names).with_format(None)[:]
    order = np.argsort(-np.asarray([len(ids) for ids in rows["input_ids"]]), kind="stable")
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    probabilities = np.empty((len(order), int(model.config.num_labels or 0)), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = collate([{name: rows[name][i] for name in names} for i in index])
            logits = model(**{k: t.to(model.device) for k, t in batch.items()}).logits.float()
            probabilities[index] = torch.sigmoid(logits).cpu().numpy()
    return probabilities


def load_classifier(model_dir: Path) -> tuple[PreTrainedModel, list[str]]:
    """The trained model (on the GPU when there is one) and its label names in id order."""
    if not (model_dir / "config.json").is_file():
        raise RefineryError(f"evaluate: no trained model in {model_dir}; run the train step first")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return model, [str(model.config.id2label[i]) for i in range(model.config.num_labels)]


def as_json(values: Sequence[object]) -> str:
    """A list cell of a CSV: JSON, so a label holding the delimiter stays one label."""
    return json.dumps(values, ensure_ascii=False)


def _references(raw: pd.DataFrame, test: Dataset, labels: list[str], source: Path) -> np.ndarray:
    """The test rows' multi-hot targets; the raw and tokenized splits must be the same rows."""
    references = np.asarray(raw[TARGETS].tolist(), dtype=np.int64).reshape(len(raw), -1)
    tokenized = np.asarray(test.with_format(None)["labels"], dtype=np.int64).reshape(len(test), -1)
    if references.shape != tokenized.shape or (references != tokenized).any():
        raise RefineryError(f"{source}: not the rows of the tokenized test split; re-run the tokenize step")
    if references.shape[1] != len(labels):
        raise RefineryError(
            f"{source}: {references.shape[1]} labels per row but the model has {len(labels)}; "
            "re-run the train step"
        )
    return references


def evaluate_run(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the run's model on its test split at its stored thresholds; write the per-label table,
    its chart and the predictions; return the metrics."""
    model, labels = load_classifier(layout.model_dir)
    thresholds = np.asarray(read_thresholds(layout.model_dir), dtype=np.float64)
    test = load_tokenized(layout)["test"]
    if len(test) == 0:
        raise RefineryError("evaluate: the test split is empty; nothing to score")
    raw_path = layout.splits_dir / "test.parquet"
    raw = pd.read_parquet(raw_path)
    references = _references(raw, test, labels, raw_path)
    probabilities = predict_probabilities(
        model, load_tokenizer(layout.model_dir), test, params.evaluate.batch_size
    )
    predicted = probabilities >= thresholds
    per_label = per_label_table(references, predicted, labels)
    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    per_label.to_csv(layout.per_class_csv, index=False, float_format="%.4f")
    plot_per_class_f1(per_label, layout.per_class_f1_png)
    names = np.asarray(labels, dtype=object)
    table = pd.DataFrame(
        {
            **{column: raw[column] for column in ("text", "text_pair") if column in raw.columns},
            "labels": [as_json(list(row)) for row in raw["labels"]],
            "predicted": [as_json(names[row].tolist()) for row in predicted],
            "scores": [
                json.dumps(dict(zip(labels, np.round(row.astype(np.float64), 4).tolist(), strict=True)))
                for row in probabilities
            ],
            "source_file": raw["source_file"],
            "source_row": raw["source_row"],
        }
    )
    table.to_csv(layout.predictions_csv, index=False)
    return {**multi_label_metrics(references, predicted), "n_test": len(test)}
