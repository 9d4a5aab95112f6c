"""Guard rails per group, McNemar and the paired bootstrap, checked by hand and against scipy/statsmodels."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict

import numpy as np
import pytest
from scipy.stats import binom, binomtest, bootstrap
from statsmodels.stats.multitest import multipletests

from tasks.comparison.guard_rails import CORRECTIONS, GroupCheck, guard_rails
from tasks.comparison.statistics import mcnemar_test, paired_bootstrap_interval


def _layout(classes: int, n: int) -> list[str]:
    return [f"class{c:03d}" for c in range(classes) for _ in range(n)]


def _equal_models(classes: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two models of equal per-class accuracy (Beta(11.5, 1), mean 0.92), errors independent."""
    rng = np.random.default_rng(seed)
    p = np.repeat(rng.beta(11.5, 1.0, size=classes), n)
    return (rng.random(p.size) < p).astype(float), (rng.random(p.size) < p).astype(float)


def _by_name(checks: list[GroupCheck]) -> dict[str, GroupCheck]:
    return {check.name: check for check in checks}


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_a_collapsed_class_trips(correction: str) -> None:
    champion, challenger = np.ones(20 * 40), np.ones(20 * 40)
    challenger[:30] = 0.0  # class000: 40/40 right -> 10/40
    checks = _by_name(guard_rails(champion, challenger, _layout(20, 40), correction=correction))  # type: ignore[arg-type]
    assert checks["class000"].tripped
    assert checks["class000"].drop == pytest.approx(0.75)
    assert checks["class000"].p_value == pytest.approx(0.5**30)
    assert checks["class000"].reason.startswith("tripped: drop 0.7500 > max_drop 0.05")
    assert [name for name, check in checks.items() if check.tripped] == ["class000"]


def test_three_of_forty_lost_does_not_trip() -> None:
    champion, challenger = np.ones(77 * 40), np.ones(77 * 40)
    champion[[0, 1]] = challenger[[0, 1]] = 0.0  # 38/40 right for both ...
    challenger[[2, 3, 4]] = 0.0  # ... then the challenger loses 3 more: 35/40, a drop of 0.075
    check = _by_name(guard_rails(champion, challenger, _layout(77, 40)))["class000"]
    assert check.drop == pytest.approx(0.075)  # the old rule (drop > 0.05) trips here
    assert check.p_value == pytest.approx(1 / 8)  # all 3 discordant pairs favour the champion
    assert not check.tripped
    assert "but not shown" in check.reason


def test_a_significant_drop_below_the_practical_size_does_not_trip() -> None:
    champion, challenger = np.ones(1000), np.ones(1000)
    challenger[:30] = 0.0  # p = 2**-30, but only 0.03 of recall
    (check,) = guard_rails(champion, challenger, ["all"] * 1000, correction="none")
    assert check.p_value < 1e-8
    assert not check.tripped
    assert check.reason.startswith("ok: drop 0.0300 <= max_drop 0.05")


def test_a_small_group_is_reported_but_cannot_trip() -> None:
    champion = np.ones(4 + 40)
    challenger = np.concatenate([np.zeros(4), np.ones(40)])  # the small group loses everything
    checks = _by_name(guard_rails(champion, challenger, ["rare"] * 4 + ["common"] * 40))
    assert checks["rare"].support == 4 and checks["rare"].drop == 1.0
    assert not checks["rare"].tripped
    assert checks["rare"].p_adjusted is None
    assert checks["rare"].reason == "too few examples (support 4 < min_support 10)"
    assert _by_name(guard_rails(champion, challenger, ["rare"] * 4 + ["common"] * 40, min_support=4))[
        "rare"
    ].p_adjusted == pytest.approx(1 / 16, abs=0.02)


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_one_sided_an_improvement_never_trips(correction: str) -> None:
    champion = np.zeros(5 * 40)  # the champion gets everything wrong, the challenger everything right
    checks = guard_rails(champion, 1.0 - champion, _layout(5, 40), correction=correction)  # type: ignore[arg-type]
    assert all(not check.tripped and check.p_value == 1.0 for check in checks)
    assert all(check.drop == -1.0 for check in checks)


def test_deterministic_with_a_seed_and_json_friendly() -> None:
    rng = np.random.default_rng(3)
    champion = rng.random(30 * 20)  # continuous scores (ROUGE-L-like): p-values come from sign flips
    challenger = np.clip(champion - rng.normal(0.02, 0.1, size=champion.size), 0, 1)
    first = guard_rails(champion, challenger, _layout(30, 20), seed=7)
    assert first == guard_rails(champion, challenger, _layout(30, 20), seed=7)
    other = guard_rails(champion, challenger, _layout(30, 20), seed=8)
    assert [c.p_adjusted for c in first] != [c.p_adjusted for c in other]
    assert json.loads(json.dumps([asdict(check) for check in first]))[0]["name"] == "class000"


def test_continuous_p_value_matches_full_enumeration_of_sign_flips() -> None:
    rng = np.random.default_rng(1)
    champion, challenger = rng.random(12), rng.random(12) * 0.7
    diff = champion - challenger
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=12)))
    exact = float(np.mean(signs @ diff >= diff.sum() - 1e-12))
    (check,) = guard_rails(champion, challenger, ["g"] * 12, correction="none", permutations=20_000)
    assert check.p_value == pytest.approx(exact, abs=0.01)


def test_holm_and_bh_match_statsmodels() -> None:
    champion, challenger = _equal_models(40, 40, seed=5)
    challenger[:40] = np.random.default_rng(0).random(40) < 0.5
    groups = _layout(40, 40)
    raw = np.array([check.p_value for check in guard_rails(champion, challenger, groups, correction="none")])
    for correction, method in (("holm", "holm"), ("bh", "fdr_bh")):
        ours = [c.p_adjusted for c in guard_rails(champion, challenger, groups, correction=correction)]  # type: ignore[arg-type]
        expected = multipletests(raw, method=method)[1]
        np.testing.assert_allclose(np.array(ours, dtype=float), expected, rtol=1e-12)


def test_westfall_young_of_one_group_is_its_raw_p_and_at_most_holm() -> None:
    champion, challenger = _equal_models(77, 40, seed=2)
    challenger[:40] = np.random.default_rng(1).random(40) < 0.6
    groups = _layout(77, 40)
    wy = _by_name(guard_rails(champion, challenger, groups, permutations=5000))["class000"]
    holm = _by_name(guard_rails(champion, challenger, groups, correction="holm"))["class000"]
    assert wy.p_adjusted is not None and holm.p_adjusted is not None
    assert wy.p_adjusted <= holm.p_adjusted  # WY knows most classes have too few discordant pairs
    (single,) = guard_rails(champion[40:80], challenger[40:80], ["g"] * 40, permutations=20_000)
    assert single.p_adjusted == pytest.approx(single.p_value, abs=0.01)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"correction": "bonferroni"}, "correction"),
        ({"alpha": 0.0}, "alpha"),
        ({"max_drop": -0.1}, "max_drop"),
        ({"min_support": 0}, "min_support"),
        ({"permutations": 10}, "permutations"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=f"^{argument}:"):
        guard_rails(np.ones(10), np.ones(10), ["g"] * 10, **kwargs)  # type: ignore[arg-type]


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="^groups:"):
        guard_rails(np.ones(10), np.ones(10), ["g"] * 9)
    with pytest.raises(ValueError, match="^challenger:"):
        guard_rails(np.ones(10), np.ones(9), ["g"] * 10)
    with pytest.raises(ValueError, match="^champion:"):
        guard_rails(np.ones(0), np.ones(0), [])


def _pairs(b: int, c: int, ties: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """b examples only A gets right, c only B, plus ties both right and both wrong."""
    right_a = np.concatenate([np.ones(b), np.zeros(c), np.ones(ties), np.zeros(ties)]).astype(bool)
    right_b = np.concatenate([np.zeros(b), np.ones(c), np.ones(ties), np.zeros(ties)]).astype(bool)
    return right_a, right_b


@pytest.mark.parametrize(("b", "c"), [(7, 7), (0, 5), (5, 0), (3, 11), (20, 41), (1, 0)])
def test_mcnemar_matches_binomtest_and_mid_p_formula(b: int, c: int) -> None:
    got_b, got_c, p_exact, p_mid = mcnemar_test(*_pairs(b, c))
    n, k = b + c, min(b, c)
    assert (got_b, got_c) == (b, c)
    assert p_exact == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-12)
    assert p_mid == pytest.approx(min(1.0, 2 * binom.cdf(k, n, 0.5) - binom.pmf(k, n, 0.5)), rel=1e-12)
    assert p_mid <= p_exact


def test_mcnemar_mid_p_edge_cases() -> None:
    assert mcnemar_test(*_pairs(7, 7))[3] == 1.0  # the old code said 0.79
    assert mcnemar_test(*_pairs(0, 0)) == (0, 0, 1.0, 1.0)
    assert mcnemar_test(*_pairs(0, 5))[3] == pytest.approx(2 / 32 - 1 / 32)


def test_mcnemar_random_cases_match_binomtest() -> None:
    rng = np.random.default_rng(11)
    for _ in range(10):
        right_a, right_b = rng.random(60) < 0.8, rng.random(60) < 0.7
        b, c, p_exact, _ = mcnemar_test(right_a, right_b)
        assert b == int(np.sum(right_a & ~right_b)) and c == int(np.sum(~right_a & right_b))
        assert p_exact == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-12)


def test_paired_bootstrap_matches_a_loop_and_scipy() -> None:
    rng = np.random.default_rng(4)
    champion = (rng.random(300) < 0.85).astype(float)
    challenger = np.where(rng.random(300) < 0.7, champion, (rng.random(300) < 0.9).astype(float))
    low, high = paired_bootstrap_interval(champion, challenger, resamples=4000, confidence=0.95, seed=0)
    loop_rng = np.random.default_rng(0)
    deltas = []
    for _ in range(4000):
        idx = loop_rng.integers(0, 300, size=300)
        deltas.append(challenger[idx].mean() - champion[idx].mean())
    expected = np.quantile(deltas, [0.025, 0.975])  # the same index stream gives the same interval
    assert (low, high) == pytest.approx(tuple(expected), abs=1e-12)

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(b.mean(axis=axis) - a.mean(axis=axis))

    reference = bootstrap(
        (champion, challenger), statistic, paired=True, method="percentile", n_resamples=4000, random_state=1
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.01)
    assert high == pytest.approx(reference.high, abs=0.01)


def test_small_simulation_false_alarms_and_detection() -> None:
    """200 comparisons of the BANKING77 layout (77 classes x 40): equal models rarely trip,
    a class falling from 0.90 to 0.30 recall is caught."""
    groups, false_alarms, detected = _layout(77, 40), 0, 0
    rng = np.random.default_rng(2024)
    for i in range(200):
        champion, challenger = _equal_models(77, 40, seed=i)
        false_alarms += any(check.tripped for check in guard_rails(champion, challenger, groups, seed=i))
        champion[:40], challenger[:40] = rng.random(40) < 0.9, rng.random(40) < 0.3
        detected += guard_rails(champion, challenger, groups, seed=i)[0].tripped
    assert false_alarms / 200 <= 0.08
    assert detected / 200 >= 0.9
