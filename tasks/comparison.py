"""Paired statistics for champion–challenger decisions on one test set.

Both models are scored on the same examples, so the comparison is paired: a bootstrap of the
metric difference over resampled examples, McNemar's test on the examples where exactly one
model is right, and per-class recall deltas as guard rails. Pure functions over label ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binom

from tasks.config import ChampionGateConfig

Ids = np.ndarray
MetricFn = Callable[[Ids, Ids, int], float]


def accuracy(references: Ids, predictions: Ids, num_labels: int) -> float:
    """Share of examples predicted right."""
    return float(np.mean(references == predictions))


def f1_macro(references: Ids, predictions: Ids, num_labels: int) -> float:
    """Unweighted mean of per-class F1 over all `num_labels` classes (absent classes score 0)."""
    counts = np.bincount(references * num_labels + predictions, minlength=num_labels * num_labels)
    confusion = counts.reshape(num_labels, num_labels)
    true_pos = np.diag(confusion).astype(float)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # predicted + actual
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros(num_labels), where=denominator > 0)
    return float(f1.mean())


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
    """McNemar's exact test on paired right/wrong outcomes: under H0 each discordant pair is a
    fair coin flip."""
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    n, k = b + c, min(b, c)
    if n == 0:
        return McNemarResult(champion_only=b, challenger_only=c, p_exact=1.0, p_mid=1.0)
    p_exact = min(1.0, 2.0 * float(binom.cdf(k, n, 0.5)))
    p_mid = min(1.0, p_exact - float(binom.pmf(k, n, 0.5)))
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


@dataclass(frozen=True)
class ChampionComparison:
    """Everything the gate needs to judge a challenger against the registered champion."""

    champion_version: str
    champion_tags: dict[str, str]  # the champion version's lineage tags (git_commit, data_hash, ...)
    bootstrap: BootstrapResult
    mcnemar: McNemarResult | None  # on right/wrong pairs: classification, or a causal LM's exact match
    groups: list[ClassDelta]  # per class, or per slice when a slice column is set
    group_by: str  # "class" or the slice column's name
    min_delta: float
    max_class_drop: float
    group_metric: str = "recall"  # what the guard rails compare per group

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChampionComparison:
        mcnemar_raw = raw.get("mcnemar")
        return cls(
            champion_version=str(raw["champion_version"]),
            champion_tags=dict(raw["champion_tags"]),
            bootstrap=BootstrapResult(**raw["bootstrap"]),
            mcnemar=McNemarResult(**mcnemar_raw) if mcnemar_raw else None,
            groups=[ClassDelta(**group) for group in raw["groups"]],
            group_by=str(raw["group_by"]),
            min_delta=float(raw["min_delta"]),
            max_class_drop=float(raw["max_class_drop"]),
            group_metric=str(raw.get("group_metric", "recall")),
        )

    @property
    def better(self) -> bool:
        """The interval's lower bound clears `min_delta`: the challenger is shown to be better."""
        return self.bootstrap.low > self.min_delta

    @property
    def tripped(self) -> list[ClassDelta]:
        return [group for group in self.groups if group.tripped]


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


def judge(comparison: ChampionComparison) -> tuple[bool, list[str], dict[str, dict[str, float | bool]]]:
    """Whether the challenger is shown better than the champion, the reasons, and the gate checks.

    Better means: the bootstrap interval's lower bound exceeds `min_delta`, and no class (or
    slice) loses more recall than `max_class_drop`. McNemar's p-value is reported, not gated.
    """
    boot, version = comparison.bootstrap, comparison.champion_version
    level = f"{boot.confidence:.0%} CI"
    interval = f"[{boot.low:+.4f}, {boot.high:+.4f}]"
    relation = ">" if comparison.better else "<="
    reasons = [
        f"vs champion v{version}: {boot.metric} {boot.challenger:.4f} vs {boot.champion:.4f}, "
        f"delta {boot.delta:+.4f}, {level} {interval}: lower bound {boot.low:+.4f} {relation} "
        f"min_delta {comparison.min_delta:+.4f}"
    ]
    if comparison.mcnemar is not None:
        test = comparison.mcnemar
        reasons.append(
            f"McNemar: {test.challenger_only} examples only the challenger gets right, "
            f"{test.champion_only} only the champion; p = {test.p_exact:.4g} (mid-p {test.p_mid:.4g})"
        )
    tripped, scored = comparison.tripped, comparison.group_metric
    for group in tripped:
        reasons.append(
            f"guard rail: {comparison.group_by} '{group.name}' {scored} {group.challenger_recall:.4f} vs "
            f"{group.champion_recall:.4f} (drop {group.drop:.4f} > {comparison.max_class_drop:.4f}, "
            f"{group.support} examples)"
        )
    if not comparison.groups:
        reasons.append("guard rails: none (set gate.champion.slice_column to check each slice)")
    elif not tripped:
        reasons.append(
            f"guard rails: no {comparison.group_by} loses more than {comparison.max_class_drop:.4f} "
            f"{scored} ({len(comparison.groups)} checked)"
        )
    passed = comparison.better and not tripped
    checks: dict[str, dict[str, float | bool]] = {
        f"champion.{boot.metric}_delta": {
            "value": boot.delta,
            "low": boot.low,
            "high": boot.high,
            "threshold": comparison.min_delta,
            "passed": comparison.better,
        },
        "champion.guard_rails": {"tripped": float(len(tripped)), "passed": not tripped},
    }
    return passed, reasons, checks


def read_comparison(path: Path) -> ChampionComparison | None:
    """The comparison the compare step wrote; None when there was no champion (or no file)."""
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return ChampionComparison.from_dict(raw) if raw.get("champion_version") else None
