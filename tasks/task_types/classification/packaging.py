"""Packaging a fine-tuned classifier for MLflow: a transformers text-classification pipeline with
its signature, an input example and the model card (a classifier of text pairs: the served encoder
pyfunc, which reads `text` and `text_pair`); and what the card says about it."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.models.tokenizers import load_tokenizer
from tasks.registry.registration import pip_requirements
from tasks.registry.serving import example_rows, log_served_encoder
from tasks.tokenization.cache import tokenized_meta

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string")]),
    outputs=Schema([ColSpec("string", name="label"), ColSpec("double", name="score")]),
)
_LIMITATIONS = """\
- Routes short texts like those of `{name}` to one of the labels above; it always answers
  with one of them, so texts outside those intents get a confident-looking wrong label.
- Scores are softmax outputs, not calibrated probabilities. Check the per-class report before
  relying on rare labels, and keep a person in the loop for decisions that affect customers.
- Performance on other domains, languages or writing styles is unknown.
"""


_PAIR_LIMITATIONS = """\
- Reads a pair of texts (`text`, `text_pair`) like those of `{name}` and answers one of the labels
  above for the pair; it always answers, so pairs unlike the training pairs get a confident-looking
  wrong label. Long pairs are cut to the logged `max_length` ({truncation}).
- Scores are softmax outputs, not calibrated probabilities. Keep a person in the loop for decisions
  that affect customers.
- Performance on other domains, languages or writing styles is unknown.
"""


def card_texts(params: Params, labels: list[str]) -> tuple[str, str]:
    """The model card's first line and its intended use and limitations, for a classifier."""
    if params.data.text_pair_column is not None:
        summary = (
            f"Text-pair classifier fine-tuned by Refinery from `{params.train.base_model}` into "
            f"{len(labels)} labels."
        )
        limits = _PAIR_LIMITATIONS.format(name=params.data.name, truncation=params.tokenize.truncation)
        return summary, limits
    summary = (
        f"Text classifier fine-tuned by Refinery from `{params.train.base_model}` into {len(labels)} labels."
    )
    return summary, _LIMITATIONS.format(name=params.data.name)


def served_settings(params: Params, layout: RunLayout) -> dict[str, object]:
    """What a served encoder needs to read its inputs as the run did: max_length, truncation, batch."""
    return {
        "max_length": int(tokenized_meta(layout)["max_length"]),
        "truncation": params.tokenize.truncation,
        "batch_size": params.evaluate.batch_size,
    }


def log_pair_model(params: Params, layout: RunLayout) -> ModelInfo:
    """Log a classifier of text pairs as the served encoder (kind single_label) in the active run."""
    return log_served_encoder(
        layout, "single_label", served_settings(params, layout), True, example_rows(layout, True)
    )


def example_texts(layout: RunLayout, count: int = 3) -> list[str]:
    """A few test texts: the input example stored with the model."""
    frame = pd.read_parquet(layout.splits_dir / "test.parquet", columns=["text"])
    return [str(text) for text in frame["text"].head(count)]


def log_model(layout: RunLayout, card: str, examples: list[str]) -> ModelInfo:
    """Log the fine-tuned model and tokenizer as a text-classification pipeline in the active run."""
    from huggingface_hub import ModelCard, ModelCardData
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(layout.model_dir))
    card_data = ModelCardData(library_name="transformers", pipeline_tag="text-classification").to_yaml()
    info: ModelInfo = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": load_tokenizer(layout.model_dir)},
        task="text-classification",
        name="model",
        signature=SIGNATURE,
        input_example=examples,
        pip_requirements=pip_requirements(),
        model_card=ModelCard(f"---\n{card_data}\n---\n{card}"),  # ours: MLflow skips the Hub lookup
    )
    return info
