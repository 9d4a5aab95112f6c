"""Regression metrics in the target's own units: scikit-learn's errors and R², SciPy's correlations."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def _correlation(value: float) -> float:
    """A correlation, or 0.0 where it is undefined (a constant prediction correlates with nothing)."""
    return float(value) if math.isfinite(value) else 0.0


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Errors (mse, rmse, mae), R² and the Pearson and Spearman correlations of predictions with targets;
    `neg_mae` (-mae) is what the champion comparison bootstraps, where higher must be better.

    A constant prediction (or target) has no correlation: 0.0 rather than NaN, so the gate and the
    summaries compare numbers. R² of a constant target is undefined too: 0.0.
    """
    predicted = np.asarray(predictions, dtype=np.float64)
    actual = np.asarray(targets, dtype=np.float64)
    mse = float(mean_squared_error(actual, predicted))
    mae = float(mean_absolute_error(actual, predicted))
    varies = len(actual) > 1 and np.ptp(actual) > 0.0 and np.ptp(predicted) > 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy and sklearn warn on the degenerate cases handled here
        pearson = _correlation(pearsonr(predicted, actual).statistic) if varies else 0.0
        spearman = _correlation(spearmanr(predicted, actual).statistic) if varies else 0.0
        r2 = float(r2_score(actual, predicted)) if len(actual) > 1 and np.ptp(actual) > 0.0 else 0.0
    return {
        "rmse": math.sqrt(mse),
        "mae": mae,
        "mse": mse,
        "r2": r2,
        "pearson": pearson,
        "spearman": spearman,
        "neg_mae": -mae,
    }
