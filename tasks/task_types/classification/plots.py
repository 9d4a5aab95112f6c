"""The per-class F1 bar chart beside the confusion matrix: which labels the model gets wrong."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure


def plot_per_class_f1(per_class: pd.DataFrame, path: Path) -> None:
    """Horizontal bars of F1 per label, worst first, with each label's test support."""
    ordered = per_class.sort_values("f1", ascending=True)
    n = len(ordered)
    fig = Figure(figsize=(7, max(3.0, 0.22 * n + 1.5)), layout="constrained")
    ax = fig.add_subplot()
    names = [
        f"{label} ({int(support)})"
        for label, support in zip(ordered["label"], ordered["support"], strict=True)
    ]
    ax.barh(range(n), ordered["f1"], color="tab:blue")
    ax.set_yticks(range(n), names, fontsize=max(6.0, min(10.0, 450.0 / max(n, 1))))
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("F1 on the test split")
    ax.set_title("Per-class F1, worst first (test examples in brackets)")
    ax.axvline(float(ordered["f1"].mean()) if n else 0.0, color="gray", linestyle="--", linewidth=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
