"""Packaging a fine-tuned regressor for MLflow: the served encoder (pyfunc, kind `regression`) that
answers `prediction` in the target's own units; and what the model card says about it."""

from __future__ import annotations

from mlflow.models.model import ModelInfo
from transformers import AutoConfig

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.registry.serving import example_rows, log_served_encoder
from tasks.task_types.classification.packaging import served_settings

_LIMITATIONS = """\
- Predicts `{target}` for {inputs} like those of `{name}`; it always answers a number, also for
  inputs unlike the training data, and it rarely answers outside the range of the training
  targets (their mean and standard deviation are logged as `target_mean` / `target_std`).
- The errors on the test split are in `eval/predictions.csv` and `eval/predicted_vs_true.png`;
  check them over the whole range of the target before relying on extreme values, and keep a
  person in the loop for decisions that affect customers.
- Performance on other domains, languages or writing styles is unknown.
"""


def _inputs(params: Params) -> str:
    pair = params.data.text_pair_column
    if pair is None:
        return f"texts (`{params.data.text_column}`)"
    return f"pairs of texts (`{params.data.text_column}`, `{pair}`; served as `text`, `text_pair`)"


def target_scale(layout: RunLayout) -> tuple[float, float]:
    """The train targets' mean and standard deviation the model was trained with (its config)."""
    config = AutoConfig.from_pretrained(str(layout.model_dir))
    return float(getattr(config, "target_mean", 0.0)), float(getattr(config, "target_std", 1.0))


def card_texts(params: Params) -> tuple[str, str]:
    """The model card's first line and its intended use and limitations, for a regressor."""
    target = params.data.label_column
    summary = (
        f"Regression model fine-tuned by Refinery from `{params.train.base_model}`: predicts the number "
        f"`{target}` from {_inputs(params)}, trained with MSE on the target standardised by train's "
        "mean and standard deviation, answering in the target's own units."
    )
    return summary, _LIMITATIONS.format(target=target, inputs=_inputs(params), name=params.data.name)


def log_model(params: Params, layout: RunLayout) -> ModelInfo:
    """Log the regressor as the served encoder (kind regression) in the active run."""
    mean, std = target_scale(layout)
    settings = {**served_settings(params, layout), "target_mean": mean, "target_std": std}
    pair = params.data.text_pair_column is not None
    return log_served_encoder(layout, "regression", settings, pair, example_rows(layout, pair))
