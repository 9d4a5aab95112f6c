"""The gate is a pure function of metrics and thresholds: every branch."""

from __future__ import annotations

from tasks.core.config import GateConfig
from tasks.gating.decision import GateDecision, decide


def test_all_thresholds_met_passes_with_reasons() -> None:
    decision = decide({"accuracy": 0.9, "f1_macro": 0.85}, GateConfig())
    assert decision.passed
    assert decision.reasons == ["accuracy 0.9000 >= 0.8500", "f1_macro 0.8500 >= 0.8000"]
    assert decision.checks["accuracy"] == {"value": 0.9, "threshold": 0.85, "passed": True}


def test_one_threshold_missed_fails_and_says_which() -> None:
    decision = decide({"accuracy": 0.9, "f1_macro": 0.79}, GateConfig())
    assert not decision.passed
    assert "f1_macro 0.7900 < 0.8000" in decision.reasons
    assert decision.checks["f1_macro"]["passed"] is False
    assert decision.checks["accuracy"]["passed"] is True


def test_metric_exactly_at_threshold_passes() -> None:
    assert decide({"accuracy": 0.85}, GateConfig(thresholds={"accuracy": 0.85})).passed


def test_missing_metric_fails() -> None:
    decision = decide({"accuracy": 0.99}, GateConfig(thresholds={"accuracy": 0.5, "f1_weighted": 0.5}))
    assert not decision.passed
    assert decision.reasons[-1] == "f1_weighted: not computed (threshold 0.5000)"


def test_no_thresholds_passes_and_says_so() -> None:
    decision = decide({"accuracy": 0.1}, GateConfig(thresholds={}))
    assert decision.passed
    assert decision.reasons == ["no thresholds configured: every model passes"]


def test_decision_round_trips_through_json() -> None:
    decision = decide({"accuracy": 0.8, "f1_macro": 0.9}, GateConfig())
    again = GateDecision.from_json(decision.to_json())
    assert again == decision
    assert again.label == "failed"
