"""Recall as a local `evaluate` module: scikit-learn's `recall_score`, no Hub download.

`evaluate.load("recall")` fetches its script from the Hub, which fails offline; Refinery loads
this file by path instead. Each metric module is a standalone script because `evaluate` copies
only the script itself into its module cache.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np
from sklearn.metrics import recall_score

_DESCRIPTION = "Recall, the fraction of true positives that are found: TP / (TP + FN)."
_INPUTS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    labels (list of int): the classes to score, and their order when `average=None`; include
        classes absent from the data to count them (as 0) in a macro average.
    pos_label (int): the positive class when `average="binary"`.
    average (str or None): "binary" (default), "micro", "macro", "weighted", "samples", or None
        for one score per class.
    sample_weight (list of float): per-example weights; default equal weights.
    zero_division (0, 1, "warn" or nan): the score of a class whose denominator is 0.
Returns:
    recall (float, or list of float when `average=None`).
"""


class Recall(evaluate.Metric):
    """Recall of single-label classification, per class or averaged."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.recall_score.html"
            ],
        )

    def _compute(
        self,
        predictions: list[int],
        references: list[int],
        labels: list[int] | None = None,
        pos_label: int = 1,
        average: str | None = "binary",
        sample_weight: list[float] | None = None,
        zero_division: float | str = "warn",
    ) -> dict[str, Any]:
        score = recall_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        values = np.asarray(score, dtype=float)
        return {"recall": values.tolist() if values.ndim else float(values)}
