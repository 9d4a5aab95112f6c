"""Where a regressor's evaluation writes its own files (beside the shared `eval/predictions.csv`)."""

from __future__ import annotations

from pathlib import Path

from tasks.core.layout import RunLayout


def scatter_png(layout: RunLayout) -> Path:
    """Predicted against true target, and the residuals, of every test example."""
    return layout.eval_dir / "predicted_vs_true.png"
