"""ROUGE-L as a local `evaluate` module: `rouge-score`'s F-measure of the longest common subsequence.

`evaluate.load("rouge")` fetches its script from the Hub; this file loads by path and scores with
the `rouge-score` package. Its default tokenizer keeps only `[a-z0-9]`, so a Chinese or Cyrillic
answer would have no tokens at all; texts are tokenized here instead into lower-cased Unicode
word runs, with each CJK character (Han, kana, hangul) a token of its own, as they are written
without spaces. The score is the mean F over pairs (two empty texts score 1).
"""

from __future__ import annotations

import re
from typing import Any

import datasets
import evaluate
from rouge_score import rouge_scorer

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
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")


class UnicodeTokenizer:
    """Lower-cased word runs of any script; one token per CJK character."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text.lower())


_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=UnicodeTokenizer())


def f_measure(prediction: str, reference: str) -> float:
    tokenizer = UnicodeTokenizer()
    if not tokenizer.tokenize(prediction) and not tokenizer.tokenize(reference):
        return 1.0
    return float(_SCORER.score(reference, prediction)["rougeL"].fmeasure)


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
