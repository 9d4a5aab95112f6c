"""Multi-label scores on multi-hot arrays (rows × labels, 0/1), with scikit-learn's definitions, and
the decision thresholds chosen on the validation split.

Every label counts in the macro and weighted averages, even one absent from the references
(zero_division=0: a label never right scores 0 rather than being left out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

GRID = np.round(np.linspace(0.05, 0.95, 19), 2)  # the thresholds tried on the validation split


def _hot(array: Any) -> np.ndarray:
    """0/1 rows × labels as integers (a list of lists, a bool or float matrix)."""
    hot = np.asarray(array).astype(np.int64)
    return hot if hot.ndim == 2 else hot.reshape(len(hot), -1)


def multi_label_metrics(references: Any, predictions: Any) -> dict[str, float]:
    """F1 (micro, macro, weighted), subset accuracy (every label of a row right), Hamming loss (share
    of wrong row × label decisions), micro precision and recall."""
    y_true, y_pred = _hot(references), _hot(predictions)
    precision, recall, _, _ = precision_recall_fscore_support(
        y_true, y_pred, average="micro", zero_division=0
    )
    return {
        "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "precision_micro": float(precision),
        "recall_micro": float(recall),
    }


def per_label_table(references: Any, predictions: Any, names: list[str]) -> pd.DataFrame:
    """One row per label, in id order: label, precision, recall, f1, support (test rows carrying it)."""
    y_true, y_pred = _hot(references), _hot(predictions)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    return pd.DataFrame(
        {"label": names, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def _best(grid: np.ndarray, scores: np.ndarray, prefer: float) -> float:
    """The grid value with the highest score; ties go to the one nearest `prefer`."""
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    return float(grid[best[np.argmin(np.abs(grid[best] - prefer))]])


def choose_thresholds(
    probabilities: np.ndarray, references: np.ndarray, rule: str, default: float
) -> list[float]:
    """One threshold per label, chosen on validation: `global` maximises micro-F1 with one value for
    every label; `per_label` maximises each label's F1, and a label without a validation positive
    keeps the global value. No validation rows: `default` for all."""
    probabilities, y_true = np.asarray(probabilities, dtype=np.float64), _hot(references)
    labels = probabilities.shape[-1]
    if len(probabilities) == 0:
        return [default] * labels
    micro = [f1_score(y_true, probabilities >= t, average="micro", zero_division=0) for t in GRID]
    overall = _best(GRID, np.asarray(micro), 0.5)
    if rule == "global":
        return [overall] * labels
    per_label = np.asarray(
        [f1_score(y_true, probabilities >= t, average=None, zero_division=0) for t in GRID]
    )  # grid × labels
    positives = y_true.sum(axis=0)
    return [_best(GRID, per_label[:, j], overall) if positives[j] > 0 else overall for j in range(labels)]
