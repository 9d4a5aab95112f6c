"""The training curve a person looks at first: train loss and validation metrics per step (PNG).

Drawn from `train/history.csv` (the Trainer's logs), so a reused training draws the same curve.
Matplotlib's object API, no pyplot: no global backend state in a served process.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_training_curve(history_csv: Path, path: Path) -> None:
    """Loss (train and validation) on the left axis, validation scores on the right, per step."""
    from matplotlib.figure import Figure  # here: a reused training copies its kept curve instead

    history = pd.read_csv(history_csv)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for column, label in (("train_loss", "train loss"), ("eval_loss", "validation loss")):
        if column in history.columns and history[column].notna().any():
            rows = history[history[column].notna()]
            ax.plot(rows["step"], rows[column], marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    scores = [c for c in history.columns if c.startswith("eval_") and c != "eval_loss"]
    scores = [c for c in scores if history[c].notna().any() and history[c].between(0, 1).all()]
    if scores:
        right = ax.twinx()
        for column in scores:
            rows = history[history[column].notna()]
            right.plot(rows["step"], rows[column], linestyle="--", marker="s", markersize=3,
                       label=column.removeprefix("eval_").replace("_", " "))  # fmt: skip
        right.set_ylabel("validation score")
        right.set_ylim(0.0, 1.0)
        right.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"Training curve ({int(history['step'].max()) if len(history) else 0} steps)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
