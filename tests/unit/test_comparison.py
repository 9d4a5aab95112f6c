"""Paired statistics checked against independent references (scipy, sklearn, a hand-written loop)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from tasks.comparison.statistics import (
    compare_predictions,
    compare_scores,
    f1_macro,
    mcnemar,
    paired_bootstrap,
    paired_bootstrap_scores,
)
from tasks.core.config import ChampionGateConfig


@pytest.mark.parametrize(("b", "c"), [(3, 11), (0, 5), (7, 7), (1, 0), (20, 41)])
def test_mcnemar_exact_matches_scipy_binomtest(b: int, c: int) -> None:
    # build paired outcomes with b champion-only and c challenger-only correct answers, plus ties
    refs = np.zeros(b + c + 10, dtype=int)
    champion = np.concatenate([np.zeros(b), np.ones(c), np.zeros(5), np.ones(5)]).astype(int)
    challenger = np.concatenate([np.ones(b), np.zeros(c), np.zeros(5), np.ones(5)]).astype(int)
    result = mcnemar(refs, champion, challenger)
    assert (result.champion_only, result.challenger_only) == (b, c)
    expected = binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert result.p_exact == pytest.approx(expected, rel=1e-12)
    assert result.p_mid <= result.p_exact


def test_mcnemar_mid_p_by_hand() -> None:
    # b=1, c=4, n=5: exact = 2*P(X<=1) = 2*(1+5)/32 = 0.375; mid-p = 0.375 - P(X=1) = 0.375 - 5/32
    refs = np.zeros(5, dtype=int)
    result = mcnemar(refs, np.array([0, 1, 1, 1, 1]), np.array([1, 0, 0, 0, 0]))
    assert result.p_exact == pytest.approx(0.375)
    assert result.p_mid == pytest.approx(0.375 - 5 / 32)


def test_mcnemar_without_discordant_pairs() -> None:
    result = mcnemar(np.array([0, 1]), np.array([0, 1]), np.array([0, 1]))
    assert result.p_exact == 1.0 and result.champion_only == result.challenger_only == 0


def test_f1_macro_matches_sklearn_with_absent_classes() -> None:
    rng = np.random.default_rng(3)
    refs, preds = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    preds[preds == 4] = 0  # class 4 never predicted
    expected = f1_score(refs, preds, labels=list(range(6)), average="macro", zero_division=0)
    assert f1_macro(refs, preds, 6) == pytest.approx(expected)


def test_bootstrap_matches_a_hand_written_loop() -> None:
    refs = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    champion = np.array([0, 0, 1, 1, 1, 0, 0, 1])
    challenger = np.array([0, 1, 1, 0, 1, 1, 1, 1])
    result = paired_bootstrap(
        refs, champion, challenger, 2, "accuracy", resamples=200, confidence=0.9, seed=7
    )
    rng = np.random.default_rng(7)
    deltas = []
    for _ in range(200):
        idx = rng.integers(0, 8, size=8)
        deltas.append(np.mean(challenger[idx] == refs[idx]) - np.mean(champion[idx] == refs[idx]))
    assert result.low == pytest.approx(np.quantile(deltas, 0.05))
    assert result.high == pytest.approx(np.quantile(deltas, 0.95))
    assert result.delta == pytest.approx(7 / 8 - 5 / 8)
    assert result.low <= result.delta <= result.high


def test_bootstrap_is_seeded_and_identical_models_give_zero_width() -> None:
    rng = np.random.default_rng(0)
    refs, preds = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    same = paired_bootstrap(refs, preds, preds, 3, "f1_macro", resamples=100)
    assert same.low == same.high == same.delta == 0.0
    other = rng.integers(0, 3, 300)
    a = paired_bootstrap(refs, preds, other, 3, "f1_macro", resamples=100, seed=1)
    b = paired_bootstrap(refs, preds, other, 3, "f1_macro", resamples=100, seed=1)
    assert a == b


def test_recall_guard_rail_needs_a_drop_beyond_the_limit_and_evidence() -> None:
    refs = np.zeros(24, dtype=int)
    champion = np.zeros(24, dtype=int)  # right on every example
    challenger = np.zeros(24, dtype=int)
    challenger[:12] = 1  # class a: all 12 examples lost, clear evidence
    challenger[12] = 1  # class b: 1 of 12 lost (drop 0.083 > 0.05, but one example proves nothing)
    groups = ["a"] * 12 + ["b"] * 12
    cfg = ChampionGateConfig(max_class_drop=0.05)
    _, _, checks = compare_predictions(refs, champion, challenger, 2, groups, cfg)
    by_name = {c.name: c for c in checks}
    assert by_name["a"].tripped and by_name["a"].drop == pytest.approx(1.0)
    assert by_name["b"].drop == pytest.approx(1 / 12) and not by_name["b"].tripped  # not shown worse
    limit = ChampionGateConfig(max_class_drop=1.0)  # a drop of exactly the limit never trips
    assert not any(c.tripped for c in compare_predictions(refs, champion, challenger, 2, groups, limit)[2])


def test_bootstrap_of_per_example_scores_matches_a_hand_written_loop() -> None:
    champion = np.array([0.0, 0.5, 1.0, 0.25, 0.0, 1.0])  # e.g. ROUGE-L of each generation
    challenger = np.array([0.5, 0.5, 1.0, 0.75, 0.0, 1.0])
    result = paired_bootstrap_scores(champion, challenger, "rouge_l", resamples=300, confidence=0.8, seed=3)
    rng = np.random.default_rng(3)
    deltas = []
    for _ in range(300):
        idx = rng.integers(0, 6, size=6)
        deltas.append(challenger[idx].mean() - champion[idx].mean())
    assert result.low == pytest.approx(np.quantile(deltas, 0.1))
    assert result.high == pytest.approx(np.quantile(deltas, 0.9))
    assert result.champion == pytest.approx(2.75 / 6) and result.challenger == pytest.approx(3.75 / 6)
    assert result.delta == pytest.approx(1.0 / 6) and result.metric == "rouge_l"


def test_generation_comparison_tests_exact_match_pairs_and_guards_slices() -> None:
    champion = {"exact_match": np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0]), "rouge_l": np.zeros(6)}
    challenger = {"exact_match": np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0]), "rouge_l": np.zeros(6)}
    cfg = ChampionGateConfig(resamples=100, max_class_drop=0.4)
    slices = ["web", "web", "web", "app", "app", "app"]
    boot, test, groups = compare_scores(champion, challenger, slices, cfg, "exact_match")
    assert boot.champion == pytest.approx(0.5) and boot.challenger == pytest.approx(5 / 6)
    # discordant pairs: one only the champion matches, three only the challenger matches
    assert (test.champion_only, test.challenger_only) == (1, 3)
    assert test.p_exact == pytest.approx(binomtest(1, 4, 0.5).pvalue)
    by_name = {g.name: g for g in groups}
    assert by_name["web"].champion == pytest.approx(2 / 3)
    assert by_name["web"].challenger == pytest.approx(2 / 3) and not by_name["web"].tripped
    assert by_name["app"].drop == pytest.approx(1 / 3 - 1.0)
    _, _, none = compare_scores(champion, challenger, None, cfg, "rouge_l")
    assert none == []
