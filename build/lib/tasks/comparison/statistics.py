"""Paired statistics for champion–challenger decisions on one test set.

Both models are scored on the same examples, so the comparison is paired: a bootstrap of the
metric difference over resampled examples, McNemar's test (statsmodels) on the examples where
exactly one model is right, and per-class recall deltas as guard rails. Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from tasks.core.config import ChampionGateConfig

Ids = np.ndarray
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
    low, high = _interval(
        len(champion),
        lambda idx: float(challenger[idx].mean() - champion[idx].mean()),
        resamples,
        confidence,
        seed,
    )
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
    """McNemar's exact test on paired right/wrong outcomes (statsmodels), with its two-sided mid-p.

    Under H0 each discordant pair is a fair coin flip: with k = min(b, c) of n = b + c, the mid-p
    is 2 P(X < k) + P(X = k) = 2 P(X <= k) - P(X = k), capped at 1 (b = c gives exactly 1).
    """
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    n, k = b + c, min(b, c)
    if n == 0:
        return McNemarResult(champion_only=b, challenger_only=c, p_exact=1.0, p_mid=1.0)
    table = [[0, b], [c, 0]]  # only the discordant cells enter the test
    p_exact = float(statsmodels_mcnemar(table, exact=True).pvalue)
    p_mid = min(1.0, 2.0 * float(binom.cdf(k, n, 0.5)) - float(binom.pmf(k, n, 0.5)))
    return McNemarResult(champion_only=b, challenger_only=c, p_exact=p_exact, p_mid=p_mid)


@dataclass(frozen=True)
class ClassDelta:
    """Recall of one class (or slice) for both models; a drop beyond the limit trips the guard rail.
    For a causal LM the `*_recall` fields hold the slice's mean of the gated metric instead."""

    name: str
    support: int
    champion_recall: float
    challenger_recall: float
    drop: float
    tripped: bool


def group_deltas(
    champion: np.ndarray, challenger: np.ndarray, groups: list[str] | Ids, max_drop: float
) -> list[ClassDelta]:
    """Per-group mean of per-example scores (1/0 for right/wrong) of both models, and the drop."""
    champion, challenger = (np.asarray(a, dtype=np.float64) for a in (champion, challenger))
    names = np.asarray(groups).astype(str)
    out = []
    for name in sorted(set(names.tolist())):
        mask = names == name
        score_a, score_b = float(np.mean(champion[mask])), float(np.mean(challenger[mask]))
        drop = score_a - score_b
        out.append(ClassDelta(name, int(mask.sum()), score_a, score_b, drop, drop > max_drop + 1e-12))
    return out


def recall_deltas(
    references: Ids, champion: Ids, challenger: Ids, groups: list[str] | Ids, max_drop: float
) -> list[ClassDelta]:
    """Per-group recall of both models; `groups` is each example's class name or slice value."""
    references = np.asarray(references)
    right_a, right_b = np.asarray(champion) == references, np.asarray(challenger) == references
    return group_deltas(right_a, right_b, groups, max_drop)


def compare_predictions(
    references: Ids,
    champion: Ids,
    challenger: Ids,
    num_labels: int,
    groups: list[str] | Ids,
    cfg: ChampionGateConfig,
    metric: str = "accuracy",
) -> tuple[BootstrapResult, McNemarResult, list[ClassDelta]]:
    """Bootstrap of the metric difference, McNemar and per-group recall deltas on paired predictions."""
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
    deltas = recall_deltas(references, champion, challenger, groups, cfg.max_class_drop)
    return boot, mcnemar(references, champion, challenger), deltas


def compare_scores(
    champion: dict[str, np.ndarray],
    challenger: dict[str, np.ndarray],
    groups: list[str] | None,
    cfg: ChampionGateConfig,
    metric: str,
) -> tuple[BootstrapResult, McNemarResult, list[ClassDelta]]:
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
    deltas = (
        group_deltas(champion[metric], challenger[metric], groups, cfg.max_class_drop)
        if groups is not None
        else []
    )
    return boot, test, deltas
