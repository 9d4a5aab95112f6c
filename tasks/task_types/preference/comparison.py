"""Comparing a preference-tuned challenger with the registered champion on the same held-out pairs.

The champion (merged or adapter, loaded as for SFT) scores each test pair of this run's tokenize
step; its implicit reward is taken against the same reference log-probs as the challenger's (the
base model's, from `eval/preferences.csv`), so both models are judged on one scale. The paired
bootstrap of preference accuracy, McNemar on the pairs ranked right, and guard rails per slice
when `gate.champion.slice_column` is set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.comparison.champion import ComparisonStats
from tasks.comparison.slices import slice_values
from tasks.comparison.statistics import group_checks, mcnemar_pairs, paired_bootstrap_scores
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types.causal_lm.comparison import load_champion_lm
from tasks.task_types.preference.evaluation import LOGP_COLUMNS, preferences_csv
from tasks.task_types.preference.scoring import answer_logps, pair_scores
from tasks.tokenization.cache import load_tokenized

METRIC = "preference_accuracy"


def compare_preferences(params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
    """Score the champion at `model_uri` on this run's test pairs; the paired statistics."""
    cfg = params.gate.champion
    path = preferences_csv(layout)
    pairs = load_tokenized(layout)["test"]
    mine = pd.read_csv(path, keep_default_na=False) if path.is_file() else None
    if mine is None or len(mine) != len(pairs):
        raise RefineryError(f"{path}: not the scores of this run's test pairs; run evaluate again")
    model, tokenizer = load_champion_lm(model_uri)
    champion_logps = answer_logps(model, pairs, int(tokenizer.pad_token_id), params.evaluate.batch_size)
    logps = mine[LOGP_COLUMNS].to_numpy(dtype=np.float64)
    champion = pair_scores(champion_logps, logps[:, 2:], params.preference.beta)
    challenger = mine["right"].astype(str).str.lower().eq("true").to_numpy(dtype=np.float64)
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    table = mine[["prompt", "chosen", "rejected", "source_file", "source_row"]].copy()
    table["champion_chosen"], table["champion_rejected"] = champion_logps[:, 0], champion_logps[:, 1]
    table["reward_margin"], table["right"] = champion.margin, champion.right.astype(bool)
    table.to_csv(layout.champion_predictions_csv, index=False)
    boot = paired_bootstrap_scores(
        champion.right, challenger, METRIC, cfg.resamples, cfg.confidence, cfg.seed
    )
    test = mcnemar_pairs(champion.right >= 1.0, challenger >= 1.0)
    rows = pd.read_parquet(layout.splits_dir / "test.parquet")
    groups = slice_values(rows, cfg.slice_column, params.data) if cfg.slice_column else None
    checks = group_checks(champion.right, challenger, groups, cfg) if groups is not None else []
    return ComparisonStats(boot, test, checks, cfg.slice_column or "slice", METRIC)
