"""Loading the local metric modules: `evaluate.load` by path, once per process and thread, offline."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).parent


def load_metric(name: str) -> evaluate.EvaluationModule:
    """One of the local metric modules (accuracy, f1, precision, recall, exact_match, rouge_l).

    One instance per thread: an `EvaluationModule` keeps state between its calls, and the trials
    of a parallel sweep (`sweep.parallel`) evaluate in threads at the same time.
    """
    return _load(name, threading.get_ident())


@functools.cache
def _load(name: str, thread: int) -> evaluate.EvaluationModule:
    # keep_in_memory: no Arrow scratch files under ~/.cache/huggingface/metrics
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)
