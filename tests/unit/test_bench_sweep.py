"""The sweep benchmark's winner-vs-defaults comparison: paired on the same test rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.sweep import paired_difference, sweep_table


def _predictions(path: Path, labels: list[str], predictions: list[str], rows: list[int]) -> Path:
    pd.DataFrame(
        {
            "text": [f"t{r}" for r in rows],
            "label": labels,
            "prediction": predictions,
            "confidence": 0.9,
            "source_file": "test.csv",
            "source_row": rows,
        }
    ).to_csv(path, index=False)
    return path


def test_paired_difference_counts_discordant_rows_by_source_row(tmp_path: Path) -> None:
    labels = ["a", "b", "a", "b", "a"]
    defaults = _predictions(tmp_path / "d.csv", labels, ["a", "a", "a", "a", "b"], [1, 2, 3, 4, 5])
    # the same rows in another order: row 2 and row 4 now right, row 5 still wrong, row 3 now wrong
    winner = _predictions(
        tmp_path / "w.csv", ["a", "b", "b", "a", "a"][::-1], ["b", "b", "b", "b", "a"][::-1], [5, 4, 3, 2, 1]
    )
    paired = paired_difference(defaults, winner)
    # defaults right on rows 1, 3 (2/5); winner right on 1, 2, 4 (3/5)
    assert paired["examples"] == 5
    assert paired["difference"] == pytest.approx(0.2)
    assert (paired["defaults_only_right"], paired["winner_only_right"]) == (1, 2)
    assert paired["low"] <= paired["difference"] <= paired["high"]
    assert paired["mcnemar_p"] == pytest.approx(1.0)


def test_paired_difference_refuses_predictions_on_other_rows(tmp_path: Path) -> None:
    defaults = _predictions(tmp_path / "d.csv", ["a", "b"], ["a", "b"], [1, 2])
    winner = _predictions(tmp_path / "w.csv", ["a", "b"], ["a", "b"], [1, 3])
    with pytest.raises(ValueError, match="w.csv: 2 test rows, 1 shared"):
        paired_difference(defaults, winner)


def test_sweep_table_shows_the_paired_interval() -> None:
    sweep = {"wall_s": 100.0, "best_validation_accuracy": 0.8, "best_params": {"train.learning_rate": 1e-4},
             "counts": {"complete": 3, "pruned": 1, "fail": 0}}  # fmt: skip
    result = {
        "dataset": "emotion", "train_samples": 500, "trials": 4, "pruners": ["median"], "median": sweep,
        "winner_test_accuracy": 0.61, "defaults_test_accuracy": 0.55,
        "winner_vs_defaults": {"difference": 0.06, "low": 0.04, "high": 0.08, "mcnemar_p": 0.0012},
    }  # fmt: skip
    table = sweep_table(result)
    assert "| winner − defaults (95 % CI) | +6.00 points [+4.00, +8.00], McNemar p = 0.0012 |" in table
    assert "| test accuracy: winner / defaults | 0.6100 / 0.5500 |" in table
