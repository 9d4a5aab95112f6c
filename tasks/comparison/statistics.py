"""Paired statistics for champion–challenger decisions on one test set.

Both models are scored on the same examples, so the comparison is paired: a bootstrap of the
metric difference over resampled examples, McNemar's test (statsmodels) on the examples where
exactly one model is right, and per-class (or per-slice) guard rails (`guard_rails.py`). Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from tasks.comparison.guard_rails import GroupCheck, guard_rails
from tasks.core.config import ChampionGateConfig

Ids = np.ndarray
_CHUNK_CELLS = 4_000_000  # bound on entries in one (resamples × examples) matrix, to bound memory
MetricFn = Callable[[Ids, Ids, int], float]


def accuracy(references: Ids, predictions: Ids, num_labels: int) -> float:
    """Share of examples predicted right."""
    return float(np.mean(references == predictions))


def f1_macro(references: Ids, predictions: Ids, num_labels: int) -> float:
    """Unweighted mean of per-class F1 over all `num_labels` classes (absent classes score 0): the
    rule of the `f1` metric module (tasks/metrics/f1), scikit-learn's `f1_score`."""
    labels = list(range(num_labels))
    return float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0))


METRICS: dict[str, MetricFn] = {"accuracy": accuracy, "f1_macro": f1_macro}


@dataclass(frozen=True)
class BootstrapResult:
    """Challenger minus champion on the gated metric, with a percentile interval."""

    metric: str
    champion: float
    challenger: float
    delta: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int


def _interval(
    n: int, delta_at: Callable[[Ids], float], resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of `delta_at(indices)` over `resamples` resamples of n examples."""
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for i in range(resamples):
        deltas[i] = delta_at(rng.integers(0, n, size=n))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_bootstrap(
    references: Ids,
    champion: Ids,
    challenger: Ids,
    num_labels: int,
    metric: str = "accuracy",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Resample examples with replacement (the same indices for both models) `resamples` times."""
    fn = METRICS[metric]
    references, champion, challenger = (
        np.asarray(a, dtype=np.int64) for a in (references, champion, challenger)
    )
    low, high = _interval(
        len(references),
        lambda idx: (
            fn(references[idx], challenger[idx], num_labels) - fn(references[idx], champion[idx], num_labels)
        ),
        resamples,
        confidence,
        seed,
    )
    base_champion = fn(references, champion, num_labels)
    base_challenger = fn(references, challenger, num_labels)
    return BootstrapResult(
        metric=metric,
        champion=base_champion,
        challenger=base_challenger,
        delta=base_challenger - base_champion,
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


def paired_bootstrap_scores(
    champion: np.ndarray,
    challenger: np.ndarray,
    metric: str,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """The same paired bootstrap for a metric that is a mean of per-example scores (exact match,
    ROUGE-L of generations): resampled examples, challenger mean minus champion mean."""
    champion, challenger = (np.asarray(a, dtype=np.float64) for a in (champion, challenger))
    low, high = paired_bootstrap_interval(champion, challenger, resamples, confidence, seed)
    return BootstrapResult(
        metric=metric,
        champion=float(champion.mean()),
        challenger=float(challenger.mean()),
        delta=float(challenger.mean() - champion.mean()),
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs and two-sided p-values (exact binomial and mid-p)."""

    champion_only: int  # champion right, challenger wrong
    challenger_only: int  # challenger right, champion wrong
    p_exact: float
    p_mid: float


def mcnemar(references: Ids, champion: Ids, challenger: Ids) -> McNemarResult:
    """McNemar's exact test on two models' predicted label ids."""
    references = np.asarray(references)
    return mcnemar_pairs(np.asarray(champion) == references, np.asarray(challenger) == references)


def mcnemar_pairs(right_a: np.ndarray, right_b: np.ndarray) -> McNemarResult:
    """McNemar's exact test on paired right/wrong outcomes (see `mcnemar_test`)."""
    b, c, p_exact, p_mid = mcnemar_test(right_a, right_b)
    return McNemarResult(champion_only=b, challenger_only=c, p_exact=p_exact, p_mid=p_mid)


def mcnemar_test(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int, float, float]:
    """Two-sided McNemar test: (b, c, exact p, mid-p), b = only A right, c = only B right.

    The mid-p subtracts the point mass before capping at 1, so b = c gives 1.0, not less.
    """
    a, b_right = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    if a.shape != b_right.shape:
        raise ValueError(f"right_b: shape {b_right.shape} differs from right_a {a.shape}")
    b, c = int(np.sum(a & ~b_right)), int(np.sum(~a & b_right))
    n, k = b + c, min(b, c)
    if n == 0:
        return b, c, 1.0, 1.0
    table = [[int(np.sum(a & b_right)), b], [c, int(np.sum(~a & ~b_right))]]
    p_exact = float(statsmodels_mcnemar(table, exact=True).pvalue)
    p_mid = min(1.0, 2.0 * float(binom.cdf(k, n, 0.5)) - float(binom.pmf(k, n, 0.5)))
    return b, c, p_exact, p_mid


def paired_bootstrap_interval(
    champion: np.ndarray, challenger: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of challenger mean minus champion mean, resampling examples in pairs.

    Indices come from `default_rng(seed)` in (chunk × n) blocks: the same stream as one
    `integers(0, n, size=n)` per resample, with memory bounded by `_CHUNK_CELLS`.
    """
    a, b = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("challenger: must be a non-empty 1-D array shaped like champion")
    if resamples < 1:
        raise ValueError(f"resamples: must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    rng, n, diff = np.random.default_rng(seed), a.size, b - a
    chunk = max(1, _CHUNK_CELLS // n)
    deltas = np.concatenate(
        [
            diff[rng.integers(0, n, size=(min(chunk, resamples - start), n))].mean(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    return float(low), float(high)


def group_checks(
    champion: np.ndarray, challenger: np.ndarray, groups: list[str] | Ids, cfg: ChampionGateConfig
) -> list[GroupCheck]:
    """The guard rails on per-example scores (1/0 for right/wrong) with the configured test."""
    rails = cfg.guard_rails
    return guard_rails(
        np.asarray(champion, dtype=np.float64),
        np.asarray(challenger, dtype=np.float64),
        [str(g) for g in groups],
        max_drop=cfg.max_class_drop,
        alpha=rails.alpha,
        correction=rails.correction,
        min_support=rails.min_support,
        permutations=rails.permutations,
        seed=cfg.seed,
    )


def compare_predictions(
    references: Ids,
    champion: Ids,
    challenger: Ids,
    num_labels: int,
    groups: list[str] | Ids,
    cfg: ChampionGateConfig,
    metric: str = "accuracy",
) -> tuple[BootstrapResult, McNemarResult, list[GroupCheck]]:
    """Bootstrap of the metric difference, McNemar and per-group recall guard rails on paired predictions."""
    boot = paired_bootstrap(
        references,
        champion,
        challenger,
        num_labels,
        metric=metric,
        resamples=cfg.resamples,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )
    references = np.asarray(references)
    right_a, right_b = np.asarray(champion) == references, np.asarray(challenger) == references
    return boot, mcnemar(references, champion, challenger), group_checks(right_a, right_b, groups, cfg)


def compare_scores(
    champion: dict[str, np.ndarray],
    challenger: dict[str, np.ndarray],
    groups: list[str] | None,
    cfg: ChampionGateConfig,
    metric: str,
) -> tuple[BootstrapResult, McNemarResult, list[GroupCheck]]:
    """The comparison for per-example scores (a causal LM's generations): bootstrap of `metric`,
    McNemar on exact match (right/wrong pairs), guard rails on `metric` per slice when `groups`."""
    boot = paired_bootstrap_scores(
        champion[metric],
        challenger[metric],
        metric,
        resamples=cfg.resamples,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )
    test = mcnemar_pairs(champion["exact_match"] >= 1.0, challenger["exact_match"] >= 1.0)
    checks = group_checks(champion[metric], challenger[metric], groups, cfg) if groups is not None else []
    return boot, test, checks
