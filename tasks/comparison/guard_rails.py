"""Per-group guard rails that do not fire by chance, and the paired tests behind them.

A group (a class, or a slice of the test data) trips only when it is *shown* to be worse: a one-sided
paired sign-flip test on the group's own examples, corrected for testing many groups at once, and an
observed drop larger than `max_drop`. Pure functions over per-example paired scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import binom

Correction = Literal["westfall_young", "holm", "bh", "none"]
CORRECTIONS: tuple[str, ...] = ("westfall_young", "holm", "bh", "none")
_CHUNK_CELLS = 4_000_000  # bound on entries in one (permutations × examples) matrix, to bound memory


@dataclass(frozen=True)
class GroupCheck:
    """One group's guard rail: both models' mean score, the drop and the one-sided test."""

    name: str
    support: int
    champion: float  # mean per-example score (recall for 1/0 right/wrong)
    challenger: float
    drop: float  # champion minus challenger; positive means worse
    p_value: float  # raw one-sided p of "the challenger is worse on this group"
    p_adjusted: float | None  # None: not in the tested family (too few examples)
    tripped: bool
    reason: str


def _validate(
    champion: np.ndarray, challenger: np.ndarray, groups: Sequence[str], kw: dict[str, float]
) -> None:
    """ValueError naming the first bad argument."""
    if champion.ndim != 1 or champion.shape != challenger.shape:
        raise ValueError(f"challenger: shape {challenger.shape} must equal champion's {champion.shape}")
    if champion.size == 0:
        raise ValueError("champion: no examples")
    if len(groups) != champion.size:
        raise ValueError(f"groups: {len(groups)} labels for {champion.size} examples")
    if not (np.all(np.isfinite(champion)) and np.all(np.isfinite(challenger))):
        raise ValueError("champion: scores must be finite (challenger too)")
    if not 0.0 <= kw["max_drop"] <= 1.0:
        raise ValueError(f"max_drop: must be in [0, 1], got {kw['max_drop']}")
    if not 0.0 < kw["alpha"] < 1.0:
        raise ValueError(f"alpha: must be in (0, 1), got {kw['alpha']}")
    if kw["min_support"] < 1:
        raise ValueError(f"min_support: must be >= 1, got {kw['min_support']}")
    if kw["permutations"] < 100:
        raise ValueError(f"permutations: must be >= 100, got {kw['permutations']}")


def _one_magnitude(diff: np.ndarray) -> bool:
    """Whether a group's nonzero differences share one magnitude (1/0 scores): then the sign-flip
    distribution is binomial and its p exact."""
    nonzero = np.abs(diff[diff != 0])
    return nonzero.size == 0 or float(nonzero.max() - nonzero.min()) <= 1e-12


def _binomial_tails(n: np.ndarray) -> np.ndarray:
    """(groups × max n + 1) table of P(Binomial(n_g, 1/2) >= k): the exact one-sided sign-flip p
    of a group whose differences share one magnitude, with k examples where only the champion scores."""
    k = np.arange(int(n.max(initial=0)) + 1)
    return np.asarray(binom.sf(k[None, :] - 1, n[:, None], 0.5), dtype=np.float64)


def _continuous_null(diff: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of one group's differences under `permutations` random sign flips, in bounded chunks."""
    nonzero = diff[diff != 0]
    chunk, sums = max(1, _CHUNK_CELLS // max(nonzero.size, 1)), []
    for start in range(0, permutations, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, permutations - start), nonzero.size)) * 2.0 - 1.0
        sums.append(signs @ nonzero)
    return np.concatenate(sums)


def _share_at_or_above(null: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Permutation p: share of `null` (plus the observed) at or above each value."""
    above = null.size - np.searchsorted(np.sort(null), values - 1e-12, side="left")
    return (above + 1.0) / (null.size + 1.0)


def _p_values(
    diffs: list[np.ndarray], permutations: int, rng: np.random.Generator, with_null: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Raw one-sided p per group, and (if `with_null`) the (permutations × groups) p-values of
    sign-flipped data. One-magnitude groups (1/0 scores: exact McNemar) need no flips: a flipped
    group has Binomial(discordant, 1/2) champion-only examples, drawn directly."""
    exact = np.array([_one_magnitude(d) for d in diffs], dtype=bool)
    n = np.array([np.count_nonzero(d) for d in diffs], dtype=np.int64)
    wins = np.array([np.count_nonzero(d > 0) for d in diffs], dtype=np.int64)
    tails = _binomial_tails(np.where(exact, n, 0))
    raw = tails[np.arange(len(diffs)), np.where(exact, wins, 0)]
    null_p = np.empty((permutations if with_null else 0, len(diffs)))
    if with_null and exact.any():
        draws = np.column_stack([rng.binomial(k, 0.5, size=permutations) for k in n[exact]])
        null_p[:, exact] = tails[np.flatnonzero(exact)[None, :], draws]
    for g in np.flatnonzero(~exact):
        null = _continuous_null(diffs[g], permutations, rng)
        raw[g] = _share_at_or_above(null, np.array([diffs[g].sum()]))[0]
        if with_null:
            null_p[:, g] = _share_at_or_above(null, null)
    return raw, null_p


def _westfall_young(raw: np.ndarray, null_p: np.ndarray) -> np.ndarray:
    """Step-down min-P adjustment (Westfall & Young 1993, alg. 2.8): raw p per group and the
    (permutations × groups) p-values of the sign-flipped data; respects each group's discreteness."""
    order = np.argsort(raw, kind="stable")
    # successive minima: for rank r, the smallest null p among the groups ranked r or later
    successive = np.minimum.accumulate(null_p[:, order][:, ::-1], axis=1)[:, ::-1]
    counts = np.sum(successive <= raw[order][None, :] * (1 + 1e-9), axis=0)
    adjusted = np.maximum.accumulate((counts + 1.0) / (null_p.shape[0] + 1.0))
    out = np.empty_like(raw)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _holm(raw: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error)."""
    order, m = np.argsort(raw, kind="stable"), raw.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * raw[order]))
    out = np.empty_like(raw)
    out[order] = adjusted
    return out


def _benjamini_hochberg(raw: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg step-up adjusted p-values (false discovery rate)."""
    order, m = np.argsort(raw, kind="stable"), raw.size
    scaled = raw[order] * m / np.arange(1, m + 1)
    out = np.empty_like(raw)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


def _adjusted(raw: np.ndarray, null_p: np.ndarray, correction: str) -> np.ndarray:
    """Adjusted p-values of the tested family under `correction`."""
    if raw.size == 0 or correction == "none":
        return raw.copy()
    if correction == "holm":
        return _holm(raw)
    if correction == "bh":
        return _benjamini_hochberg(raw)
    return _westfall_young(raw, null_p)


def _reason(drop: float, p_adj: float, tripped: bool, max_drop: float, alpha: float, label: str) -> str:
    """One line saying why the group tripped or not."""
    evidence = f"p_adjusted {p_adj:.4g} {'<=' if p_adj <= alpha else '>'} alpha {alpha:g} ({label})"
    if tripped:
        return f"tripped: drop {drop:.4f} > max_drop {max_drop:g} and {evidence}"
    if drop <= max_drop:
        return f"ok: drop {drop:.4f} <= max_drop {max_drop:g}; {evidence}"
    return f"ok: drop {drop:.4f} > max_drop {max_drop:g} but not shown: {evidence}"


def guard_rails(
    champion: np.ndarray,
    challenger: np.ndarray,
    groups: Sequence[str],
    *,
    max_drop: float = 0.05,
    alpha: float = 0.05,
    correction: Correction = "westfall_young",
    min_support: int = 10,
    permutations: int = 2000,
    seed: int = 0,
) -> list[GroupCheck]:
    """Per-group checks, sorted by name: a group trips when its drop exceeds `max_drop` and a
    one-sided paired sign-flip test (exact McNemar for 1/0 scores), corrected across the groups
    with at least `min_support` examples, gives p_adjusted <= `alpha` (FWER; FDR for bh).

    Scores that are not 1/0 get permutation p-values of resolution 1 / (permutations + 1): Holm or
    BH over many groups then need more permutations; Westfall–Young does not."""
    a, b = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    kw = {"max_drop": max_drop, "alpha": alpha, "min_support": min_support, "permutations": permutations}
    _validate(a, b, groups, kw)
    if correction not in CORRECTIONS:
        raise ValueError(f"correction: must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    names, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    diffs = [a[idx] - b[idx] for idx in members]
    tested = [g for g, idx in enumerate(members) if idx.size >= min_support]
    rng = np.random.default_rng(seed)
    raw, null_p = _p_values(diffs, permutations, rng, with_null=correction == "westfall_young")
    adjusted = _adjusted(raw[tested], null_p[:, tested], correction)
    p_adj: dict[int, float] = {g: float(p) for g, p in zip(tested, adjusted, strict=True)}
    out = []
    for g, idx in enumerate(members):
        mean_a, mean_b = float(a[idx].mean()), float(b[idx].mean())
        drop, p = mean_a - mean_b, p_adj.get(g)
        if p is None:
            tripped, reason = False, f"too few examples (support {idx.size} < min_support {min_support})"
        else:
            tripped = drop > max_drop + 1e-12 and p <= alpha
            reason = _reason(drop, p, tripped, max_drop, alpha, correction)
        out.append(
            GroupCheck(str(names[g]), int(idx.size), mean_a, mean_b, drop, float(raw[g]), p, tripped, reason)
        )
    return out
