"""The end-of-run summary: the effective tracking store, whether training was reused; run directories
that never collide."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.cli.main import _summary
from tasks.core.config import parse_params
from tasks.core.layout import RunLayout, new_run_dir
from tasks.gating.decision import GateDecision
from tasks.registry.registration import RegistrationResult


def _finished_run(root: Path, training: dict[str, object]) -> RunLayout:
    """The files `refinery run` reads back for its summary."""
    layout = RunLayout(root)
    layout.eval_dir.mkdir(parents=True)
    layout.eval_metrics.write_text(json.dumps({"accuracy": 0.9, "f1_macro": 0.8, "n_test": 10}))
    layout.gate_json.write_text(GateDecision(passed=True, reasons=["accuracy 0.9000 >= 0.8500"]).to_json())
    result = RegistrationResult("run-1", "0", True, "m", "3", "models:/m/3", "models:/m@challenger")
    layout.registration_json.write_text(result.to_json())
    layout.train_dir.mkdir()
    layout.train_metrics.write_text(json.dumps(training))
    return layout


def test_summary_shows_the_effective_tracking_store_and_a_reused_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("register:\n  tracking_uri: sqlite:///from-params.db\n")
    layout = _finished_run(tmp_path / "run", {"global_steps": 12, "reused": True})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")  # team mode
    text = _summary(str(params), {}, layout)
    assert text is not None
    assert "Open the MLflow UI: open http://127.0.0.1:5999" in text and "from-params.db" not in text
    assert "Training: reused: a finished training with the same key (train.reuse_trained)" in text
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    layout.train_metrics.write_text(json.dumps({"global_steps": 12}))
    text = _summary(str(params), {}, layout)
    assert text is not None and "Training: trained in this run (12 steps)" in text
    assert "--backend-store-uri sqlite:///from-params.db" in text


def test_summary_markdown_uses_the_effective_tracking_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.cli.summary import run_summary_markdown

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5998")
    decision = GateDecision(passed=False, reasons=["accuracy 0.1000 < 0.8500"])
    registration = RegistrationResult("run-2", "0", False, "m", None, None, None)
    text = run_summary_markdown(parse_params({}), {"accuracy": 0.1}, decision, registration, {"reused": True})
    assert "UI: `open http://127.0.0.1:5998`" in text and "Training: reused" in text


def test_run_directories_started_in_the_same_instant_are_distinct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.core.layout as layout_module

    instant = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return instant

    monkeypatch.setattr(layout_module, "datetime", Frozen)
    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(new_run_dir(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all(path.is_dir() for path in made)
    assert sorted(p.name for p in made)[0] == "20261125T120000.000000Z"
    assert new_run_dir(tmp_path, "reproduce-m-v1-").name.startswith("reproduce-m-v1-20261125T120000")


def test_a_resumed_training_says_from_where_and_what_it_skipped() -> None:
    from tasks.cli.console import _train_figure
    from tasks.cli.summary import training_line

    resumed = {"global_steps": 60, "resumed": True, "resumed_from": "checkpoint-6", "checkpoints_skipped": 1,
               "train_samples_per_second": 200.0}  # fmt: skip
    assert _train_figure(resumed) == (
        "60 steps, resumed from checkpoint-6 (1 newer checkpoint(s) unusable, removed: see run.log), "
        "200.0 samples/s"
    )
    assert training_line(resumed) == (
        "trained in this run (60 steps), resumed from checkpoint-6 of an interrupted run; "
        "1 unusable checkpoint(s) skipped (run.log says why)"
    )
    afresh = {**resumed, "resumed": False, "resumed_from": None}
    assert _train_figure(afresh).startswith("60 steps, started afresh (1 newer checkpoint(s) unusable")
    assert (
        _train_figure({"global_steps": 60, "train_samples_per_second": 200.0}) == "60 steps, 200.0 samples/s"
    )
