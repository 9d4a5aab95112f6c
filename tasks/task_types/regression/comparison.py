"""Comparing a regressor challenger with the registered champion on the same test rows.

The champion is the served encoder it was registered as (pyfunc, `tasks.models.served_encoder`):
it reads the test texts (and pairs) with its own tokenizer, max_length and target scale and answers
in the target's units. Per example, each model's score is its negated absolute error, so higher is
better as the gate asks: the paired bootstrap of their mean (`neg_mae`, challenger minus champion),
and guard rails on it per slice when `gate.champion.slice_column` is set (none otherwise: the rows
have no classes). There is no McNemar test: an error is not right or wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.comparison.champion import ComparisonStats
from tasks.comparison.slices import slice_values
from tasks.comparison.statistics import group_checks, paired_bootstrap_scores
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout

METRIC = "neg_mae"  # the mean of -|prediction - target|: higher is better


def champion_predictions(model_uri: str, test: pd.DataFrame) -> np.ndarray:
    """The champion's prediction for every test row, in the target's units."""
    import mlflow.pyfunc
    from mlflow.models import get_model_info

    if "transformers" in get_model_info(model_uri).flavors:
        raise RefineryError(
            f"{model_uri} is a classifier, not a regressor: cannot compare it with this run; "
            "move the 'champion' alias or use another register.model_name"
        )
    columns = ["text", "text_pair"] if "text_pair" in test.columns else ["text"]
    answered = mlflow.pyfunc.load_model(model_uri).predict(test[columns].astype(str))
    if not isinstance(answered, pd.DataFrame) or "prediction" not in answered.columns:
        raise RefineryError(
            f"{model_uri} does not answer a number per text: not a regressor; move the 'champion' alias "
            "or use another register.model_name"
        )
    return answered["prediction"].to_numpy(dtype=np.float64)


def compare_champion(params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
    """Score the champion at `model_uri` on the test split and compare it with this run's predictions."""
    cfg = params.gate.champion
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    mine = pd.read_csv(layout.predictions_csv, keep_default_na=False)
    if len(mine) != len(test):
        raise RefineryError(
            f"{layout.predictions_csv}: not the predictions of this run's test rows; run evaluate"
        )
    targets = test["target"].to_numpy(dtype=np.float64)
    predicted = champion_predictions(model_uri, test)
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    shown = [c for c in ("text", "text_pair", "target", "source_file", "source_row") if c in test.columns]
    table = test[shown].assign(prediction=np.round(predicted, 6), error=np.round(predicted - targets, 6))
    table.to_csv(layout.champion_predictions_csv, index=False)
    champion = -np.abs(predicted - targets)
    challenger = -np.abs(mine["prediction"].to_numpy(dtype=np.float64) - targets)
    boot = paired_bootstrap_scores(champion, challenger, METRIC, cfg.resamples, cfg.confidence, cfg.seed)
    groups = slice_values(test, cfg.slice_column, params.data) if cfg.slice_column else None
    checks = group_checks(champion, challenger, groups, cfg) if groups is not None else []
    return ComparisonStats(boot, None, checks, cfg.slice_column or "slice", METRIC)
