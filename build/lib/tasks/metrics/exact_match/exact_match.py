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
    return_per_example (bool): also return 1.0 or 0.0 for each pair (default False).
Returns:
    exact_match (float): the fraction of exact matches, 0.0 to 1.0 (and exact_match_per_example).
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
        self,
        predictions: list[str],
        references: list[str],
        ignore_case: bool = False,
        return_per_example: bool = False,
    ) -> dict[str, Any]:
        scores = [
            float(_normalise(p, ignore_case) == _normalise(r, ignore_case))
            for p, r in zip(predictions, references, strict=True)
        ]
        result: dict[str, Any] = {"exact_match": sum(scores) / len(scores) if scores else 0.0}
        if return_per_example:
            result["exact_match_per_example"] = scores
        return result
