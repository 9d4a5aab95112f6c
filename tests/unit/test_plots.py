"""The run's plots: training curve and per-class F1 as PNGs, and the links the Prefect artifact shows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.cli.summary import artifact_url, plots_markdown
from tasks.task_types.classification.plots import plot_per_class_f1
from tasks.training.plots import plot_training_curve

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curve_draws_losses_and_validation_scores(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "step,epoch,train_loss,learning_rate,eval_loss,eval_accuracy\n"
        "2,0.5,1.10,0.001,,\n4,1.0,,,1.05,0.33\n6,1.5,0.98,0.0005,,\n8,2.0,,,0.97,0.67\n",
        encoding="utf-8",
    )
    plot_training_curve(history, tmp_path / "train" / "training_curve.png")
    assert (tmp_path / "train" / "training_curve.png").read_bytes().startswith(PNG)


def test_per_class_f1_chart_is_written_for_many_classes(tmp_path: Path) -> None:
    labels = [f"intent_{i}" for i in range(77)]
    frame = pd.DataFrame({"label": labels, "f1": [i / 77 for i in range(77)], "support": 40})
    plot_per_class_f1(frame, tmp_path / "per_class_f1.png")
    assert (tmp_path / "per_class_f1.png").read_bytes().startswith(PNG)


def test_plot_links_point_at_the_mlflow_ui() -> None:
    assert artifact_url("http://mlflow:5000/", "abc", "eval/per class.png") == (
        "http://mlflow:5000/get-artifact?path=eval/per%20class.png&run_uuid=abc"
    )
    local = plots_markdown("sqlite:///mlflow.db", "abc", [("Per-class F1", "eval/per_class_f1.png")])
    assert (
        "![Per-class F1](http://127.0.0.1:5000/get-artifact?path=eval/per_class_f1.png&run_uuid=abc)" in local
    )
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in local
