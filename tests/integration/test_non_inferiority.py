"""A scheduled refresh asks "is the challenger at least as good?": a challenger identical to its
champion passes non-inferiority within a margin and registers, and fails superiority."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateFailed
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api")]


def test_an_identical_challenger_is_non_inferior_but_not_superior(
    tmp_path: Path, tiny_base_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    train_csv = tmp_path / "train.csv"
    banking_sample(per_class=20).to_csv(train_csv, index=False)

    def run(name: str, champion: dict[str, Any], seed: int = 42) -> dict[str, Any]:
        # the same data and training params: the finished training is reused, so the predictions match
        params = tiny_params(
            tmp_path,
            tiny_base_model,
            train_csv,
            data={"seed": seed},
            train={"max_steps": 2},
            gate={"thresholds": {}, "champion": champion},
            register={"promotion": "auto"},
        )
        return finetune(params_path=str(params), workdir=str(tmp_path / name))

    first = run("v1", {})
    assert first["registration"]["version"] == "1" and first["train"]["reused"] is False
    with pytest.raises(GateFailed) as refused:
        run("superiority", {"test": "superiority"})
    assert "question (superiority, gate.champion.test): is the challenger better than champion v1" in str(
        refused.value
    )
    assert "lower bound +0.0000 <= min_delta +0.0000" in str(refused.value)

    refresh = run("refresh", {"test": "non_inferiority", "margin": 0.01})
    assert refresh["gate"]["passed"] and refresh["registration"]["version"] == "2"
    comparison = json.loads(RunLayout(tmp_path / "refresh").comparison_json.read_text())
    assert comparison["bootstrap"]["delta"] == 0.0 and comparison["test"] == "non_inferiority"
    assert any("within a margin of 0.0100? yes" in r for r in refresh["gate"]["reasons"])
    report = RunLayout(tmp_path / "refresh").gate_report_md.read_text()
    assert "**Question (non-inferiority, gate.champion.test)" in report
    assert refresh["train"]["reused"] is True  # the summary and MLflow say so too
    assert any(
        r.startswith("overlap: none of the 16 test rows is among champion v1's")
        for r in refresh["gate"]["reasons"]
    )
    # another split seed: the champion (v2) trained on rows of this test split, so it cannot promote
    with pytest.raises(GateFailed) as leaked:
        run("reshuffled", {"test": "non_inferiority", "margin": 1.0}, seed=7)
    assert "overlap: champion v2 was trained on" in str(leaked.value) and "(row hashes)" in str(leaked.value)
    assert "set gate.champion.allow_overlap: true" in str(leaked.value)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_metrics = client.get_run(refresh["registration"]["run_id"]).data.metrics
    assert run_metrics["train.reused"] == 1.0
    assert client.get_run(first["registration"]["run_id"]).data.metrics["train.reused"] == 0.0
    assert str(client.get_model_version_by_alias("tiny-intent", "champion").version) == "2"
