"""Exact match as a local `evaluate` module: the share of outputs equal to their reference.

`evaluate.load("exact_match")` fetches its script from the Hub, which fails offline; Refinery
loads this file by path. Both sides are compared after stripping and collapsing whitespace.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

_DESCRIPTION = "Fraction of generated texts equal to their reference after whitespace normalisation."
_INPUTS = """
Args:
    predictions (list of str): generated texts.
    references (list of str): expected texts.
    ignore_case (bool): compare lower-cased texts (default False).
Returns:
    exact_match (float): the fraction of exact matches, 0.0 to 1.0.
"""


def _normalise(text: str, ignore_case: bool) -> str:
    text = " ".join(text.split())
    return text.lower() if ignore_case else text


class ExactMatch(evaluate.Metric):
    """Exact string match of generations."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(
        self, predictions: list[str], references: list[str], ignore_case: bool = False
    ) -> dict[str, Any]:
        if not predictions:
            return {"exact_match": 0.0}
        hits = sum(
            _normalise(p, ignore_case) == _normalise(r, ignore_case)
            for p, r in zip(predictions, references, strict=True)
        )
        return {"exact_match": hits / len(predictions)}
