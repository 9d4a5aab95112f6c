"""ROUGE-L as a local `evaluate` module: the F-measure of the longest common subsequence.

`evaluate.load("rouge")` fetches its script from the Hub and needs `rouge-score`; this file is
standalone. Texts are lower-cased and split into alphanumeric tokens (as rouge-score does,
without stemming); per pair, P = LCS / len(prediction), R = LCS / len(reference),
F = 2PR / (P + R); the score is the mean F over pairs (two empty texts score 1).
"""

from __future__ import annotations

import re
from typing import Any

import datasets
import evaluate

_DESCRIPTION = (
    "Mean ROUGE-L F-measure (longest common subsequence of tokens) over prediction/reference pairs."
)
_INPUTS = """
Args:
    predictions (list of str): generated texts.
    references (list of str): expected texts.
    return_per_example (bool): also return the F-measure of each pair (default False).
Returns:
    rouge_l (float): the mean F-measure, 0.0 to 1.0 (and rouge_l_per_example, a list).
"""
_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) time and O(len(b)) memory."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def f_measure(prediction: str, reference: str) -> float:
    p, r = tokens(prediction), tokens(reference)
    if not p and not r:
        return 1.0
    common = lcs_length(p, r)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


class RougeL(evaluate.Metric):
    """ROUGE-L F-measure of generations."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(
        self, predictions: list[str], references: list[str], return_per_example: bool = False
    ) -> dict[str, Any]:
        scores = [f_measure(p, r) for p, r in zip(predictions, references, strict=True)]
        result: dict[str, Any] = {"rouge_l": sum(scores) / len(scores) if scores else 0.0}
        if return_per_example:
            result["rouge_l_per_example"] = scores
        return result
