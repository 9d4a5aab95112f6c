"""Packaging a fine-tuned token classifier for MLflow: the served-encoder pyfunc (entity spans for
raw text, `tasks/models/served_encoder.py`) and what the model card says about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.core.config import Params
from tasks.core.layout import RunLayout

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

_LIMITATIONS = """\
- Finds the entity types above in short texts like those of `{name}`, one tag per word (words are
  split on whitespace: "$100" is one word, "$ 100" two). Words past the run's max_length in
  sub-tokens (the tokenize step's facts) get no tag.
- Entity scores are the mean softmax of the entity's words, not calibrated probabilities. The
  per-type table shows which types it finds reliably; keep a person in the loop for decisions
  that affect customers.
- Performance on other domains, languages or writing styles is unknown.
"""


def entity_types(labels: list[str]) -> list[str]:
    """The entity types of tag names (B-MONEY, I-MONEY -> MONEY), sorted."""
    return sorted({tag.partition("-")[2] for tag in labels if "-" in tag})


def card_texts(params: Params, labels: list[str]) -> tuple[str, str]:
    """The model card's first line and its intended use and limitations."""
    kinds = ", ".join(entity_types(labels))
    summary = (
        f"Token classifier (named entities: {kinds}) fine-tuned by Refinery from `{params.train.base_model}` "
        f"with {len(labels)} {params.token_classification.scheme} tags; served as entity spans."
    )
    return summary, _LIMITATIONS.format(name=params.data.name)


def log_model(layout: RunLayout) -> ModelInfo:
    """Log the model as a served encoder of kind token_classification in the active run."""
    from tasks.registry.serving import example_rows, log_served_encoder
    from tasks.tokenization.cache import tokenized_meta

    settings = {"max_length": int(tokenized_meta(layout)["max_length"])}
    return log_served_encoder(layout, "token_classification", settings, False, example_rows(layout, False))
