"""The champion comparison record the gate reads, and the judgement on it.

The compare step fills a `ChampionComparison` from a task type's paired statistics and the
champion's lineage; `judge` turns it into the gate's reasons and checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.comparison.guard_rails import GroupCheck
from tasks.comparison.overlap import Overlap
from tasks.comparison.statistics import BootstrapResult, McNemarResult
from tasks.core.config import ChampionGateConfig


@dataclass(frozen=True)
class ComparisonStats:
    """What a task type measures on the paired predictions of champion and challenger."""

    bootstrap: BootstrapResult
    mcnemar: McNemarResult | None  # on right/wrong pairs: classification, or a causal LM's exact match
    groups: list[GroupCheck]  # per class, or per slice when a slice column is set
    group_by: str  # "class" or the slice column's name
    group_metric: str  # what the guard rails compare per group: "recall", or the gated metric


@dataclass(frozen=True)
class ChampionComparison:
    """Everything the gate needs to judge a challenger against the registered champion."""

    champion_version: str
    champion_tags: dict[str, str]  # the champion version's lineage tags (git_commit, data_hash, ...)
    bootstrap: BootstrapResult
    mcnemar: McNemarResult | None  # on right/wrong pairs: classification, or a causal LM's exact match
    groups: list[GroupCheck]  # per class, or per slice when a slice column is set
    group_by: str  # "class" or the slice column's name
    min_delta: float
    max_class_drop: float
    group_metric: str = "recall"  # what the guard rails compare per group
    guard_rail_test: str = "westfall_young, alpha 0.05"  # the correction and level they used
    test: str = "superiority"  # the question asked: superiority or non_inferiority
    margin: float = 0.0  # non_inferiority: how much worse the challenger may be
    overlap_rows: int | None = None  # test rows the champion was trained on; None: not checked
    overlap_note: str = ""  # the overlap check in one sentence
    allow_overlap: bool = False  # gate.champion.allow_overlap

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
            groups=[GroupCheck(**group) for group in raw["groups"]],
            group_by=str(raw["group_by"]),
            min_delta=float(raw["min_delta"]),
            max_class_drop=float(raw["max_class_drop"]),
            group_metric=str(raw.get("group_metric", "recall")),
            guard_rail_test=str(raw.get("guard_rail_test", "")),
            test=str(raw.get("test", "superiority")),
            margin=float(raw.get("margin", 0.0)),
            overlap_rows=None if raw.get("overlap_rows") is None else int(raw["overlap_rows"]),
            overlap_note=str(raw.get("overlap_note", "")),
            allow_overlap=bool(raw.get("allow_overlap", False)),
        )

    @classmethod
    def build(
        cls,
        version: str,
        tags: dict[str, str],
        stats: ComparisonStats,
        cfg: ChampionGateConfig,
        overlap: Overlap | None = None,
    ) -> ChampionComparison:
        """The record of a comparison with champion `version` (its lineage `tags`) and the limits applied."""
        return cls(
            champion_version=version,
            champion_tags=tags,
            bootstrap=stats.bootstrap,
            mcnemar=stats.mcnemar,
            groups=stats.groups,
            group_by=stats.group_by,
            min_delta=cfg.min_delta,
            max_class_drop=cfg.max_class_drop,
            group_metric=stats.group_metric,
            guard_rail_test=f"{cfg.guard_rails.correction}, alpha {cfg.guard_rails.alpha:g}",
            test=cfg.test,
            margin=cfg.margin,
            overlap_rows=overlap.rows if overlap is not None else None,
            overlap_note=overlap.describe(version) if overlap is not None else "",
            allow_overlap=cfg.allow_overlap,
        )

    @property
    def bound(self) -> float:
        """What the interval's lower bound must exceed: `min_delta`, or `-margin` for non-inferiority."""
        return -self.margin if self.test == "non_inferiority" else self.min_delta

    @property
    def better(self) -> bool:
        """The interval's lower bound clears `bound`: the challenger is shown better (superiority)
        or no worse than the champion by more than the margin (non-inferiority)."""
        return self.bootstrap.low > self.bound

    @property
    def overlap_blocks(self) -> bool:
        """The champion learned some of the test rows, and `gate.champion.allow_overlap` is false."""
        return bool(self.overlap_rows) and not self.allow_overlap

    @property
    def tripped(self) -> list[GroupCheck]:
        return [group for group in self.groups if group.tripped]


def question(comparison: ChampionComparison) -> str:
    """The question the gate asked about the champion, and its answer, in plain words."""
    boot, version = comparison.bootstrap, comparison.champion_version
    answer = "yes" if comparison.better else "no"
    level = f"{boot.confidence:.0%}"
    if comparison.test == "non_inferiority":
        return (
            f"question (non-inferiority, gate.champion.test): is the challenger at least as good as "
            f"champion v{version} on {boot.metric}, within a margin of {comparison.margin:.4f}? {answer}: "
            f"the {level} interval of challenger - champion "
            + ("lies above" if comparison.better else "reaches down to or below")
            + f" -{comparison.margin:.4f} (gate.champion.margin)"
        )
    return (
        f"question (superiority, gate.champion.test): is the challenger better than champion v{version} "
        f"on {boot.metric} by more than {comparison.min_delta:+.4f}? {answer}: the {level} interval of "
        "challenger - champion "
        + ("lies above" if comparison.better else "reaches down to or below")
        + f" {comparison.min_delta:+.4f} (gate.champion.min_delta)"
    )


def judge(comparison: ChampionComparison) -> tuple[bool, list[str], dict[str, dict[str, float | bool]]]:
    """Whether the challenger passes against the champion, the reasons, and the gate checks.

    Passing means: the bootstrap interval's lower bound exceeds `min_delta` (superiority) or
    `-margin` (non-inferiority), and no class (or slice) is shown to be worse (a one-sided
    paired test, corrected across the groups) by more than `max_class_drop`.
    McNemar's p-value is reported, not gated.
    """
    boot, version = comparison.bootstrap, comparison.champion_version
    level = f"{boot.confidence:.0%} CI"
    interval = f"[{boot.low:+.4f}, {boot.high:+.4f}]"
    relation = ">" if comparison.better else "<="
    limit = (
        f"-margin {comparison.bound:+.4f}"
        if comparison.test == "non_inferiority"
        else f"min_delta {comparison.min_delta:+.4f}"
    )
    reasons = [
        question(comparison),
        f"vs champion v{version}: {boot.metric} {boot.challenger:.4f} vs {boot.champion:.4f}, "
        f"delta {boot.delta:+.4f}, {level} {interval}: lower bound {boot.low:+.4f} {relation} {limit}",
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
            f"guard rail: {comparison.group_by} '{group.name}' {scored} {group.challenger:.4f} vs "
            f"{group.champion:.4f} (drop {group.drop:.4f} > {comparison.max_class_drop:.4f}, one-sided "
            f"p adjusted {group.p_adjusted:.4g}, {group.support} examples)"
        )
    if not comparison.groups:
        reasons.append("guard rails: none (set gate.champion.slice_column to check each slice)")
    elif not tripped:
        used = f"; {comparison.guard_rail_test}" if comparison.guard_rail_test else ""
        reasons.append(
            f"guard rails: no {comparison.group_by} shown to lose more than "
            f"{comparison.max_class_drop:.4f} {scored} ({len(comparison.groups)} checked{used})"
        )
    if comparison.overlap_note:
        reasons.append(comparison.overlap_note + overlap_verdict(comparison))
    passed = comparison.better and not tripped and not comparison.overlap_blocks
    return passed, reasons, _checks(comparison)


def _checks(comparison: ChampionComparison) -> dict[str, dict[str, float | bool]]:
    """The gate checks of a champion comparison: the interval, the guard rails, the overlap."""
    boot, tripped = comparison.bootstrap, comparison.tripped
    checks: dict[str, dict[str, float | bool]] = {
        f"champion.{boot.metric}_delta": {
            "value": boot.delta,
            "low": boot.low,
            "high": boot.high,
            "threshold": comparison.bound,
            "passed": comparison.better,
        },
        "champion.guard_rails": {"tripped": float(len(tripped)), "passed": not tripped},
    }
    if comparison.overlap_rows is not None:
        checks["champion.overlap"] = {
            "value": float(comparison.overlap_rows),
            "passed": not comparison.overlap_blocks,
        }
    return checks


def overlap_verdict(comparison: ChampionComparison) -> str:
    """What an overlap means for the decision, appended to its sentence."""
    if not comparison.overlap_rows:
        return ""
    if comparison.allow_overlap:
        return "; allowed (gate.champion.allow_overlap: true)"
    return "; this comparison cannot promote (set gate.champion.allow_overlap: true to accept it)"


def read_comparison(path: Path) -> ChampionComparison | None:
    """The comparison the compare step wrote; None when there was no champion (or no file)."""
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return ChampionComparison.from_dict(raw) if raw.get("champion_version") else None
