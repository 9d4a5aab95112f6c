"""The gate with a champion comparison: every branch of `decide(metrics, cfg, comparison)`, pure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tasks.comparison.champion import ChampionComparison, ComparisonStats, read_comparison
from tasks.comparison.guard_rails import GroupCheck
from tasks.comparison.statistics import BootstrapResult, McNemarResult, compare_predictions
from tasks.core.config import ChampionGateConfig, GateConfig, Params, parse_params
from tasks.gating.decision import GateDecision, decide
from tasks.gating.report import build_report, report_markdown
from tasks.registry.release import promotion_reason
from tasks.task_types import task_type_for

METRICS = {"accuracy": 0.9, "f1_macro": 0.85}


def checked(raw: dict[str, Any]) -> Params:
    """Params as every entry point reads them: parsed, then checked by their task type."""
    params = parse_params(raw)
    task_type_for(params)
    return params


def champion_metric(raw: dict[str, Any]) -> str:
    params = checked(raw)
    return task_type_for(params).champion_metric(params)


def comparison(
    low: float, drops: tuple[float, ...] = (0.0, 0.01), min_delta: float = 0.0
) -> ChampionComparison:
    """A comparison whose interval's lower bound is `low`, with one group per recall drop."""
    boot = BootstrapResult("accuracy", 0.85, 0.9, 0.05, low, low + 0.1, 0.95, 1000, 0)
    groups = [
        GroupCheck(f"class_{i}", 20, 0.9, 0.9 - drop, drop, 0.001, 0.004, drop > 0.05 + 1e-12, "")
        for i, drop in enumerate(drops)
    ]
    tags = {"git_commit": "abc", "data_hash": "md5:1"}
    return ChampionComparison(
        "3", tags, boot, McNemarResult(4, 9, 0.27, 0.2), groups, "class", min_delta, 0.05
    )


def test_better_challenger_without_tripped_guard_rails_passes() -> None:
    decision = decide(METRICS, GateConfig(), comparison(low=0.01))
    assert decision.passed
    assert any(
        "vs champion v3" in r and "lower bound +0.0100 > min_delta +0.0000" in r for r in decision.reasons
    )
    assert any(r.startswith("McNemar: 9 examples only the challenger") for r in decision.reasons)
    assert decision.reasons[-1] == (
        "guard rails: no class shown to lose more than 0.0500 recall (2 checked; westfall_young, alpha 0.05)"
    )
    assert decision.checks["champion.accuracy_delta"]["passed"] is True


def test_interval_touching_min_delta_is_refused() -> None:
    decision = decide(METRICS, GateConfig(), comparison(low=0.0))
    assert not decision.passed
    assert any("lower bound +0.0000 <= min_delta +0.0000" in r for r in decision.reasons)
    assert decision.checks["champion.accuracy_delta"] == {
        "value": 0.05, "low": 0.0, "high": pytest.approx(0.1), "threshold": 0.0, "passed": False,
    }  # fmt: skip


def test_positive_min_delta_demands_a_margin() -> None:
    assert not decide(METRICS, GateConfig(), comparison(low=0.01, min_delta=0.02)).passed
    assert decide(METRICS, GateConfig(), comparison(low=0.03, min_delta=0.02)).passed


def test_a_tripped_guard_rail_refuses_an_otherwise_better_challenger() -> None:
    decision = decide(METRICS, GateConfig(), comparison(low=0.02, drops=(0.0, 0.2)))
    assert not decision.passed
    tripped = [r for r in decision.reasons if r.startswith("guard rail:")]
    assert tripped == [
        "guard rail: class 'class_1' recall 0.7000 vs 0.9000 (drop 0.2000 > 0.0500, one-sided p adjusted "
        "0.004, 20 examples)"
    ]
    assert decision.checks["champion.guard_rails"] == {"tripped": 1.0, "passed": False}


def test_missed_threshold_fails_even_when_better_than_the_champion() -> None:
    decision = decide({"accuracy": 0.5, "f1_macro": 0.85}, GateConfig(), comparison(low=0.05))
    assert not decision.passed
    assert "accuracy 0.5000 < 0.8500" in decision.reasons


def test_without_a_champion_the_thresholds_alone_decide() -> None:
    assert decide(METRICS, GateConfig(), None) == decide(METRICS, GateConfig())
    assert decide(METRICS, GateConfig()).passed


def test_decision_with_comparison_round_trips_through_json() -> None:
    decision = decide(METRICS, GateConfig(), comparison(low=0.01, drops=(0.3,)))
    assert GateDecision.from_json(decision.to_json()) == decision


def test_comparison_file_round_trips_and_no_champion_reads_as_none(tmp_path: Path) -> None:
    original = comparison(low=0.01)
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps(original.to_dict()))
    assert read_comparison(path) == original
    path.write_text(json.dumps({"champion_version": None, "reason": "no 'champion' alias"}))
    assert read_comparison(path) is None
    assert read_comparison(tmp_path / "absent.json") is None


def test_compare_predictions_uses_the_configured_metric_and_groups() -> None:
    refs = np.array([0, 0, 1, 1, 2, 2] * 5)
    champion = np.array([0, 1, 1, 0, 2, 0] * 5)
    challenger = refs.copy()
    cfg = ChampionGateConfig(metric="f1_macro", resamples=200, seed=1)
    slices = ["web", "app"] * 15
    boot, test, groups = compare_predictions(refs, champion, challenger, 3, slices, cfg, "f1_macro")
    assert boot.metric == "f1_macro" and boot.resamples == 200 and boot.challenger == 1.0
    assert boot.low > 0 and test.challenger_only == 15 and test.champion_only == 0
    assert [g.name for g in groups] == ["app", "web"] and not any(g.tripped for g in groups)


def test_champion_params_are_typed_and_closed() -> None:
    params = parse_params({"gate": {"champion": {"metric": "f1_macro", "confidence": 0.9}}})
    assert params.gate.champion.metric == "f1_macro" and params.register_.promotion == "manual"
    with pytest.raises(Exception, match=r"unknown key 'gate.champion.alpha'"):
        parse_params({"gate": {"champion": {"alpha": 0.05}}})
    with pytest.raises(Exception, match=r"gate.champion.metric must be accuracy or f1_macro .* got 'bleu'"):
        checked({"gate": {"champion": {"metric": "bleu"}}})
    with pytest.raises(Exception, match=r"'register.promotion'"):
        parse_params({"register": {"promotion": "always"}})


def test_champion_metric_auto_follows_the_task_and_a_mismatch_names_the_key() -> None:
    assert champion_metric({}) == "accuracy"
    llm = {"task": "causal_lm", "train": {"metric_for_best_model": "loss"}}
    assert champion_metric(llm) == "exact_match"
    assert champion_metric({**llm, "gate": {"champion": {"metric": "rouge_l"}}}) == "rouge_l"
    with pytest.raises(Exception, match=r"gate.champion.metric must be exact_match or rouge_l when task is "
                       r"causal_lm, got 'accuracy'"):  # fmt: skip
        checked({**llm, "gate": {"champion": {"metric": "accuracy"}}})
    with pytest.raises(Exception, match=r"gate.champion.metric must be accuracy or f1_macro"):
        checked({"gate": {"champion": {"metric": "rouge_l"}}})


def test_generation_comparison_without_slices_says_no_guard_rails_ran() -> None:
    boot = BootstrapResult("exact_match", 0.4, 0.6, 0.2, 0.05, 0.35, 0.95, 1000, 0)
    compared = ChampionComparison(
        "1", {}, boot, McNemarResult(2, 12, 0.01, 0.006), [], "slice", 0.0, 0.05, "exact_match"
    )
    decision = decide({}, GateConfig(thresholds={}), compared)
    assert decision.passed
    assert any(r.startswith("vs champion v1: exact_match 0.6000 vs 0.4000") for r in decision.reasons)
    assert "guard rails: none (set gate.champion.slice_column to check each slice)" in decision.reasons
    challenger = {"version": "2", "mlflow_run_id": "run-2", "lineage": {"git_commit": "abc"}}
    report = build_report("m", {}, decision, compared, challenger, {"policy": "manual", "outcome": "-"})
    text = report_markdown(report)
    assert "| exact_match | 0.4000 | 0.6000 | +0.2000 | [+0.0500, +0.3500] | +0.0000 |" in text
    assert "No guard rails: set `gate.champion.slice_column`" in text
    sliced = ChampionComparison(
        "1",
        {},
        boot,
        None,
        [GroupCheck("web", 9, 0.8, 0.5, 0.3, 0.01, 0.02, True, "")],
        "channel",
        0.0,
        0.05,
        "exact_match",
    )
    refused = decide({}, GateConfig(thresholds={}), sliced)
    assert not refused.passed
    assert (
        "guard rail: channel 'web' exact_match 0.5000 vs 0.8000 (drop 0.3000 > 0.0500, one-sided p adjusted "
        "0.02, 9 examples)" in refused.reasons
    )
    assert ChampionComparison.from_dict(sliced.to_dict()) == sliced


def test_report_shows_estimates_intervals_p_values_deltas_lineage_and_decision() -> None:
    compared = comparison(low=0.01, drops=(0.0, 0.2))
    decision = decide(METRICS, GateConfig(), compared)
    challenger = {
        "version": None,
        "mlflow_run_id": "run-9",
        "lineage": {"git_commit": "def", "data_hash": "md5:2"},
    }
    promotion = {"policy": "auto", "outcome": "not registered: nothing to promote"}
    report = build_report("intent", METRICS, decision, compared, challenger, promotion)
    assert report["decision"]["passed"] is False and report["champion"]["version"] == "3"
    text = report_markdown(report)
    for expected in (
        "# Gate report: intent (not registered)",
        "## Decision: **FAILED**",
        "| accuracy | 0.8500 | 0.9000 | +0.0500 | [+0.0100, +0.1100] | +0.0000 |",
        "p = 0.27 (exact), 0.2 (mid-p)",
        "| class_1 | 20 | 0.9000 | 0.7000 | +0.2000 | 0.001 | 0.004 | **yes** |",
        "| git_commit | def | abc |",
        "- policy: `auto`",
    ):
        assert expected in text, expected
    assert promotion_reason(compared).startswith("auto: beats v3 on accuracy by +0.0500")


def test_manual_policy_never_promotes_and_a_refused_model_is_not_promoted() -> None:
    from tasks.registry.registration import RegistrationResult
    from tasks.registry.release import apply_policy

    params = parse_params({"register": {"model_name": "intent", "promotion": "manual"}})
    registered = RegistrationResult(
        "run", "0", True, "intent", "4", "models:/intent/4", "models:/intent@challenger"
    )
    passed = decide(METRICS, GateConfig())
    # neither branch touches the registry: no client needed
    outcome = apply_policy(None, params, passed, None, registered)  # type: ignore[arg-type]
    assert outcome == {
        "policy": "manual",
        "outcome": "alias 'challenger' set; promote with `refinery promote intent --version 4`",
    }
    auto = parse_params({"register": {"promotion": "auto"}})
    refused = RegistrationResult("run", "0", False, "intent", None, None, None)
    outcome = apply_policy(None, auto, decide({}, GateConfig()), None, refused)  # type: ignore[arg-type]
    assert outcome["outcome"] == "not registered: nothing to promote"


def test_slices_come_from_the_test_rows_source_file(tmp_path: Path) -> None:
    from tasks.comparison.slices import slice_values
    from tasks.core.errors import RefineryError

    source = tmp_path / "test.csv"
    source.write_text("text,category,channel\na,x,web\nb,y,app\nc,x,app\n", encoding="utf-8")
    test = pd.DataFrame({"source_file": [str(source)] * 2, "source_row": [3, 1]})
    params = parse_params({})
    assert slice_values(test, "channel", params.data) == ["app", "web"]
    with pytest.raises(RefineryError, match=r"slice_column: column 'country' not found in .*test\.csv"):
        slice_values(test, "country", params.data)


def non_inferiority(low: float, margin: float) -> ChampionComparison:
    """`comparison(low)` asked as non-inferiority within `margin`."""
    base = comparison(low=low)
    return ChampionComparison.from_dict({**base.to_dict(), "test": "non_inferiority", "margin": margin})


def test_superiority_is_the_default_question_and_says_so_in_plain_words() -> None:
    assert ChampionGateConfig().test == "superiority" and ChampionGateConfig().margin == 0.0
    decision = decide(METRICS, GateConfig(), comparison(low=-0.004))
    assert not decision.passed
    assert decision.reasons[len(METRICS)] == (
        "question (superiority, gate.champion.test): is the challenger better than champion v3 on accuracy "
        "by more than +0.0000? no: the 95% interval of challenger - champion reaches down to or below "
        "+0.0000 (gate.champion.min_delta)"
    )


def test_non_inferiority_passes_when_the_lower_bound_clears_minus_the_margin() -> None:
    passed = decide(METRICS, GateConfig(), non_inferiority(low=-0.004, margin=0.01))
    assert passed.passed
    assert any("lower bound -0.0040 > -margin -0.0100" in r for r in passed.reasons)
    assert any(
        r.startswith("question (non-inferiority, gate.champion.test): is the challenger at least as good")
        and "within a margin of 0.0100? yes" in r
        for r in passed.reasons
    )
    assert passed.checks["champion.accuracy_delta"]["threshold"] == -0.01
    refused = decide(METRICS, GateConfig(), non_inferiority(low=-0.02, margin=0.01))
    assert not refused.passed
    assert any("lower bound -0.0200 <= -margin -0.0100" in r for r in refused.reasons)
    assert any("? no: the 95% interval" in r for r in refused.reasons)


def test_non_inferiority_is_configured_and_reported() -> None:
    params = parse_params({"gate": {"champion": {"test": "non_inferiority", "margin": 0.01}}})
    assert params.gate.champion.test == "non_inferiority" and params.gate.champion.margin == 0.01
    with pytest.raises(Exception, match=r"'gate.champion.test'"):
        parse_params({"gate": {"champion": {"test": "equivalence"}}})
    with pytest.raises(Exception, match=r"'gate.champion.margin'"):
        parse_params({"gate": {"champion": {"margin": -0.1}}})
    compared = non_inferiority(low=-0.004, margin=0.01)
    assert read_comparison_roundtrip(compared) == compared
    decision = decide(METRICS, GateConfig(), compared)
    challenger = {"version": "4", "mlflow_run_id": "r", "lineage": {}}
    report = build_report("m", METRICS, decision, compared, challenger, {"policy": "auto", "outcome": "x"})
    text = report_markdown(report)
    assert "**Question (non-inferiority, gate.champion.test): is the challenger at least as good" in text
    assert "| accuracy | 0.8500 | 0.9000 | +0.0500 | [-0.0040, +0.0960] | -0.0100 |" in text
    assert promotion_reason(compared).startswith("auto: no worse than v3 (margin 0.0100) on accuracy")


def read_comparison_roundtrip(compared: ChampionComparison) -> ChampionComparison:
    return ChampionComparison.from_dict(json.loads(json.dumps(compared.to_dict())))


def test_a_champion_label_the_challenger_lacks_counts_wrong_and_stays_out_of_other_rows() -> None:
    from tasks.task_types.classification.comparison import label_ids

    labels = ["a", "b", "c"]
    champion = label_ids(["retired", "a", "b", "b", "c", "retired"], labels)  # "retired": not in labels
    assert champion.tolist() == [-1, 0, 1, 1, 2, -1]
    refs = np.array([0, 0, 1, 1, 2, 2])  # -1 on a row of class 0 (r = 0) and of class 2 (r - 1 = 2)
    classes = ["a", "a", "b", "b", "c", "c"]
    cfg = ChampionGateConfig(metric="f1_macro", resamples=100, seed=3)
    boot, test, groups = compare_predictions(refs, champion, refs.copy(), 3, classes, cfg, "f1_macro")
    # class a: 1 of 2 right, no false positive; b: perfect; c: 1 of 2 right; nothing lands in a or c's column
    assert boot.champion == pytest.approx((2 / 3 + 1.0 + 2 / 3) / 3)
    assert test.challenger_only == 2 and test.champion_only == 0
    assert [g.champion for g in groups] == [0.5, 1.0, 0.5]
    boot_acc, _, _ = compare_predictions(refs, champion, refs.copy(), 3, classes, cfg, "accuracy")
    assert boot_acc.champion == pytest.approx(4 / 6)


def test_predictions_round_trip_through_csv_as_written(tmp_path: Path) -> None:
    from tasks.task_types.classification.comparison import label_ids, read_predictions

    path = tmp_path / "predictions.csv"
    pd.DataFrame({"text": ["x", "y", "z"], "prediction": ["007", "7", "NA"]}).to_csv(path, index=False)
    mine = read_predictions(path)
    assert mine["prediction"].tolist() == ["007", "7", "NA"]
    assert label_ids(mine["prediction"].tolist(), ["007", "7", "NA"]).tolist() == [0, 1, 2]


def test_a_champion_trained_on_test_rows_cannot_promote_unless_allowed() -> None:
    from tasks.comparison.overlap import Overlap

    def compared(overlap: Overlap, allow: bool = False) -> ChampionComparison:
        base = comparison(low=0.02)
        return ChampionComparison.build(
            "3", base.champion_tags,
            ComparisonStats(base.bootstrap, base.mcnemar, base.groups, "class", "recall"),
            ChampionGateConfig(allow_overlap=allow), overlap=overlap,
        )  # fmt: skip

    leaked = compared(Overlap(12, 40, "row hashes"))
    refused = decide(METRICS, GateConfig(), leaked)
    assert not refused.passed and refused.checks["champion.overlap"] == {"value": 12.0, "passed": False}
    assert (
        "overlap: champion v3 was trained on 12 of the 40 test rows that this run did not train on "
        "(row hashes): it is scored on examples "
        "it learned; this comparison cannot promote (set gate.champion.allow_overlap: true to accept it)"
    ) in refused.reasons
    allowed = decide(METRICS, GateConfig(), compared(Overlap(12, 40, "row hashes"), allow=True))
    assert allowed.passed and any(
        r.endswith("allowed (gate.champion.allow_overlap: true)") for r in allowed.reasons
    )
    clean = decide(METRICS, GateConfig(), compared(Overlap(0, 40, "row hashes")))
    assert (
        clean.passed
        and "overlap: none of the 40 test rows is among champion v3's training rows that this run did "
        "not train on (row hashes)"
        in (clean.reasons)
    )
    assert ChampionComparison.from_dict(json.loads(json.dumps(leaked.to_dict()))) == leaked
    report = build_report(
        "m", METRICS, refused, leaked, {"version": None, "lineage": {}}, {"policy": "auto", "outcome": "-"}
    )
    assert "Overlap: champion v3 was trained on 12 of the 40 test rows" in report_markdown(report)


def test_overlap_by_row_and_by_data_hashes() -> None:
    from tasks.comparison.overlap import by_data_hashes, by_rows
    from tasks.data.splitting import row_hashes

    test = pd.DataFrame({"text": ["lost my card", " where is my card ", "hello"]})
    trained = set(row_hashes(pd.DataFrame({"text": ["where is my card", "top up"]})))
    assert by_rows(row_hashes(test), trained).rows == 1  # stripped texts match
    # rows this run trained on too favour neither side: reported as shared, they do not count
    both = by_rows(
        row_hashes(test), trained, own_rows=set(row_hashes(pd.DataFrame({"text": ["where is my card"]})))
    )
    assert (both.rows, both.shared) == (0, 1)
    assert "1 test rows were trained on by both (validate.allow_leakage)" in both.describe("2")
    assert "training rows that this run did not train on" in both.describe("2")
    assert by_data_hashes(3, "md5:t", {"data_hash_train": "md5:t"}).rows == 3
    assert by_data_hashes(3, "md5:t", {"data_hash_train": "md5:other"}).rows is None
    assert by_data_hashes(3, "none", {}).method == "the champion recorded neither row nor data-file hashes"
