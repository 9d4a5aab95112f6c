"""Loading the local metric modules: `evaluate.load` by path, once per process, offline."""

from __future__ import annotations

import functools
from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).parent


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """One of the local metric modules (accuracy, f1, precision, recall, exact_match, rouge_l)."""
    # keep_in_memory: no Arrow scratch files under ~/.cache/huggingface/metrics
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)
