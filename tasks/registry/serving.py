"""Logging a fine-tuned encoder as the pyfunc model of `served_encoder.py`: the saved model
directory as its artifact, the task's decision rule as its `model_config`, a signature naming
the input columns (`text`, and `text_pair` for pairs) and an input example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema

from tasks.core.layout import RunLayout
from tasks.registry.registration import pip_requirements

SERVED_MODEL = Path(__file__).parents[1] / "models" / "served_encoder.py"
KINDS = ("single_label", "multi_label", "regression", "token_classification")


def input_signature(pair: bool) -> ModelSignature:
    """What a served encoder reads: named `text` and `text_pair` columns for a model of text pairs;
    one unnamed string column otherwise, so a list of texts is as good as a one-column frame."""
    if not pair:
        return ModelSignature(inputs=Schema([ColSpec("string")]))
    columns = [ColSpec("string", name="text"), ColSpec("string", name="text_pair")]
    return ModelSignature(inputs=Schema(columns))  # type: ignore[arg-type]


def example_rows(layout: RunLayout, pair: bool, count: int = 3) -> pd.DataFrame:
    """A few test rows in the served input's columns: the input example stored with the model."""
    columns = ["text", "text_pair"] if pair else ["text"]
    return pd.read_parquet(layout.splits_dir / "test.parquet", columns=columns).head(count).astype(str)


def log_served_encoder(
    layout: RunLayout, kind: str, settings: dict[str, Any], pair: bool, examples: pd.DataFrame
) -> ModelInfo:
    """Log `layout.model_dir` as a pyfunc of `kind` (see `served_encoder.py`) in the active run.

    `settings`: `max_length` (required), `truncation`, `batch_size`, and the kind's rule
    (`thresholds` for multi_label, `target_mean`/`target_std` for regression)."""
    if kind not in KINDS:
        raise ValueError(f"unknown served encoder kind {kind!r}; one of {', '.join(KINDS)}")
    info: ModelInfo = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(SERVED_MODEL),
        artifacts={"model": str(layout.model_dir)},
        model_config={**settings, "kind": kind},
        signature=input_signature(pair),
        input_example=examples,
        pip_requirements=pip_requirements(),
    )
    return info
