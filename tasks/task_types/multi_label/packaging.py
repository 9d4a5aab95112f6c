"""Packaging a fine-tuned multi-label classifier for MLflow: the served encoder (pyfunc, kind
multi_label) that answers each text with its label list at the stored thresholds; the card's texts."""

from __future__ import annotations

from mlflow.models.model import ModelInfo

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.registry.serving import example_rows, log_served_encoder
from tasks.task_types.multi_label.decision import read_thresholds
from tasks.tokenization.cache import tokenized_meta

_LIMITATIONS = """\
- Tags short texts like those of `{name}` with every label above whose score reaches that label's
  threshold (chosen on the validation split, stored with the model); a text outside those topics
  may get no label, or confident-looking wrong ones.
- Scores are sigmoid outputs, not calibrated probabilities. Check the per-label report before
  relying on rare labels, and keep a person in the loop for decisions that affect customers.
- Performance on other domains, languages or writing styles is unknown.
"""


def card_texts(params: Params, labels: list[str]) -> tuple[str, str]:
    """The model card's first line and its intended use and limitations, for a multi-label classifier."""
    rule = params.multi_label.threshold.replace("_", "-")
    summary = (
        f"Multi-label text classifier fine-tuned by Refinery from `{params.train.base_model}`: any number "
        f"of {len(labels)} labels per text, one sigmoid each, decided at {rule} thresholds."
    )
    return summary, _LIMITATIONS.format(name=params.data.name)


def log_model(params: Params, layout: RunLayout) -> ModelInfo:
    """Log the model directory as the multi-label served encoder in the active run."""
    pair = params.data.text_pair_column is not None
    settings = {
        "max_length": int(tokenized_meta(layout)["max_length"]),
        "truncation": params.tokenize.truncation,
        "thresholds": read_thresholds(layout.model_dir),
        "batch_size": params.evaluate.batch_size,
    }
    return log_served_encoder(layout, "multi_label", settings, pair, example_rows(layout, pair))
