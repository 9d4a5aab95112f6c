"""Comparing a multi-label challenger with the registered champion on the same test rows.

The champion is the registered pyfunc (`served_encoder.py`, kind multi_label): it predicts label lists
for the test texts at its own stored thresholds. Micro- and macro-F1 are not means of per-row scores,
so the paired bootstrap resamples rows and recomputes the metric for both models from the resampled
rows' true/false positive and false negative counts. McNemar compares the rows whose whole label
set is right; the guard rails compare, per label (or per slice), whether each (row, label) decision
is right.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tasks.comparison.champion import ComparisonStats
from tasks.comparison.slices import slice_values
from tasks.comparison.statistics import BootstrapResult, group_checks, mcnemar_pairs
from tasks.core.config import ChampionGateConfig, Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types.multi_label.evaluation import as_json
from tasks.task_types.multi_label.records import TARGETS, multi_hot


def _counts(references: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per row: true positives, false positives and false negatives of each label, and whether the
    whole set is right (rows × (3 · labels + 1))."""
    y, p = references.astype(bool), predictions.astype(bool)
    exact = (y == p).all(axis=1, keepdims=True)
    return np.hstack([y & p, ~y & p, y & ~p, exact]).astype(np.float64)


def metric_of(metric: str, sums: np.ndarray, rows: float) -> np.ndarray:
    """`metric` from summed counts (… × (3 · labels + 1)), e.g. those of resampled rows."""
    labels = (sums.shape[-1] - 1) // 3
    tp, fp, fn = sums[..., :labels], sums[..., labels : 2 * labels], sums[..., 2 * labels : 3 * labels]
    if metric == "subset_accuracy":
        return np.asarray(sums[..., -1] / rows)
    if metric == "f1_micro":
        tp, fp, fn = tp.sum(axis=-1), fp.sum(axis=-1), fn.sum(axis=-1)
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    if metric == "f1_micro":
        return np.asarray(f1)
    if metric == "f1_macro":
        return np.asarray(f1.mean(axis=-1))
    raise ValueError(f"no bootstrap for metric {metric!r}; one of f1_micro, f1_macro, subset_accuracy")


def paired_bootstrap_sets(
    references: np.ndarray, champion: np.ndarray, challenger: np.ndarray, metric: str, cfg: ChampionGateConfig
) -> BootstrapResult:
    """Resample test rows with replacement (the same rows for both models) `cfg.resamples` times and
    recompute `metric` for each; the percentile interval of challenger minus champion."""
    a, b = _counts(references, champion), _counts(references, challenger)
    rows = len(a)
    rng = np.random.default_rng(cfg.seed)
    deltas = np.empty(cfg.resamples)
    for i in range(cfg.resamples):
        weights = np.bincount(rng.integers(0, rows, size=rows), minlength=rows).astype(np.float64)
        deltas[i] = metric_of(metric, weights @ b, rows) - metric_of(metric, weights @ a, rows)
    tail = (1.0 - cfg.confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    base_a, base_b = (
        float(metric_of(metric, a.sum(axis=0), rows)),
        float(metric_of(metric, b.sum(axis=0), rows)),
    )
    return BootstrapResult(
        metric=metric, champion=base_a, challenger=base_b, delta=base_b - base_a, low=float(low),
        high=float(high), confidence=cfg.confidence, resamples=cfg.resamples, seed=cfg.seed,
    )  # fmt: skip


def score_champion(model_uri: str, test: pd.DataFrame, batch_size: int) -> list[list[str]]:
    """The label lists the registered model at `model_uri` predicts for the test rows."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)
    columns = ["text", "text_pair"] if "text_pair" in test.columns else ["text"]
    parts = [model.predict(test[columns].iloc[i : i + batch_size]) for i in range(0, len(test), batch_size)]
    predicted = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"labels": []})
    if not isinstance(predicted, pd.DataFrame) or "labels" not in predicted.columns:
        raise RefineryError(
            f"{model_uri} does not predict label lists (no 'labels' column): not a multi-label model; "
            "move the 'champion' alias or use another register.model_name"
        )
    return [[str(name) for name in labels] for labels in predicted["labels"]]


def _challenger(layout: RunLayout, test: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """This run's predicted label sets (the evaluate step's predictions) as multi-hot rows."""
    mine = pd.read_csv(layout.predictions_csv, keep_default_na=False, dtype=str)
    if len(mine) != len(test):
        raise RefineryError(
            f"{layout.predictions_csv}: not the predictions of this test split; run evaluate again"
        )
    return multi_hot([json.loads(cell) for cell in mine["predicted"]], labels)


def compare_champion(params: Params, layout: RunLayout, model_uri: str, metric: str) -> ComparisonStats:
    """Score the champion at `model_uri` on the test rows and compare it with this run's predictions."""
    cfg = params.gate.champion
    labels: list[str] = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    references = np.asarray(test[TARGETS].tolist(), dtype=np.int64).reshape(len(test), -1)
    challenger = _challenger(layout, test, labels)
    predicted = score_champion(model_uri, test, params.evaluate.batch_size)
    champion = multi_hot(predicted, labels)  # a label only the champion knows: not one of this run's
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    inputs = [column for column in ("text", "text_pair") if column in test.columns]
    table = test[[*inputs, "source_file", "source_row"]].assign(
        labels=[as_json(list(row)) for row in test["labels"]], predicted=[as_json(row) for row in predicted]
    )
    table.to_csv(layout.champion_predictions_csv, index=False)
    boot = paired_bootstrap_sets(references, champion, challenger, metric, cfg)
    right_a, right_b = champion == references, challenger == references  # rows × labels
    mcnemar = mcnemar_pairs(right_a.all(axis=1), right_b.all(axis=1))
    # guard rails on (row, label) decisions, row-major: per label, or per the row's slice
    groups = (
        np.repeat(np.asarray(slice_values(test, cfg.slice_column, params.data), dtype=object), len(labels))
        if cfg.slice_column
        else np.tile(np.asarray(labels, dtype=object), len(test))
    )
    checks = group_checks(right_a.ravel(), right_b.ravel(), groups.tolist(), cfg)
    return ComparisonStats(boot, mcnemar, checks, cfg.slice_column or "label", "label_accuracy")
