"""Accuracy as a local `evaluate` module: scikit-learn's `accuracy_score`, no Hub download.

`evaluate.load("accuracy")` fetches its script from the Hub, which fails offline; Refinery loads
this file by path instead. Each metric module is a standalone script because `evaluate` copies
only the script itself into its module cache.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Fraction of predictions equal to their reference: (TP + TN) / (TP + TN + FP + FN)."
_INPUTS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    normalize (bool): the fraction (default) or the count of correct predictions.
    sample_weight (list of float): per-example weights; default equal weights.
Returns:
    accuracy (float): the fraction (or count) of correct predictions.
"""


class Accuracy(evaluate.Metric):
    """Accuracy of single-label classification."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"
            ],
        )

    def _compute(
        self,
        predictions: list[int],
        references: list[int],
        normalize: bool = True,
        sample_weight: list[float] | None = None,
    ) -> dict[str, Any]:
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
