"""Comparing a classifier challenger with the registered champion on the same test split.

The champion is loaded as its own model and tokenizer (MLflow transformers flavor), tokenized
with the run's rule (truncation at the run's `max_length`) and scored with the same `predict`;
a model of text pairs is a served encoder (pyfunc, `tasks.models.served_encoder`) and answers
for both texts itself. The paired predictions give the bootstrap, McNemar and per-class (or
per-slice) recall deltas.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.comparison.champion import ComparisonStats
from tasks.comparison.slices import slice_values
from tasks.comparison.statistics import compare_predictions
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types.classification.evaluation import predict
from tasks.tokenization.cache import tokenized_meta


def score_champion(
    model_uri: str, texts: list[str], max_length: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted label names and confidences of the model at `model_uri`, with its own tokenizer."""
    import mlflow.transformers
    from datasets import Dataset

    components = mlflow.transformers.load_model(model_uri, return_type="components")
    model, tokenizer = components["model"], components["tokenizer"]
    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise RefineryError(
            f"{model_uri} ({type(model).__name__}) is not a sequence classifier: cannot compare it with "
            "this run; move the 'champion' alias or use another register.model_name"
        )
    limit = int(getattr(model.config, "max_position_embeddings", max_length) or max_length)
    encoded = tokenizer(texts, truncation=True, max_length=min(max_length, limit))
    predictions, confidence = predict(model, tokenizer, Dataset.from_dict(dict(encoded)), batch_size)
    names = np.asarray([str(model.config.id2label[i]) for i in range(model.config.num_labels)], dtype=object)
    return names[predictions], confidence


def score_pair_champion(model_uri: str, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predicted label names and confidences of the served encoder at `model_uri` on the test pairs
    (its own tokenizer, max_length and truncation, as logged)."""
    import mlflow.pyfunc
    from mlflow.models import get_model_info

    if "transformers" in get_model_info(model_uri).flavors:
        raise RefineryError(
            f"{model_uri} is a classifier of single texts: cannot compare it with this run of text pairs "
            "(data.text_pair_column); move the 'champion' alias or use another register.model_name"
        )
    model = mlflow.pyfunc.load_model(model_uri)
    answered = model.predict(test[["text", "text_pair"]].astype(str))
    if not isinstance(answered, pd.DataFrame) or not {"label", "score"} <= set(answered.columns):
        raise RefineryError(
            f"{model_uri} does not answer a label and score per text pair: cannot compare it with this "
            "run; move the 'champion' alias or use another register.model_name"
        )
    return answered["label"].astype(str).to_numpy(dtype=object), answered["score"].to_numpy(np.float64)


def label_ids(names: list[str] | np.ndarray, labels: list[str]) -> np.ndarray:
    """Label names as this run's ids; a name outside `labels` (a class only the champion knows) is
    -1, which matches no reference: counted wrong, never in another class's row."""
    label_ids = {name: i for i, name in enumerate(labels)}
    return np.asarray([label_ids.get(str(name), -1) for name in names], dtype=np.int64)


def read_predictions(path: Path) -> pd.DataFrame:
    """The evaluate step's predictions, every cell as written: a label such as `007` stays `007`."""
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def compare_champion(params: Params, layout: RunLayout, model_uri: str, metric: str) -> ComparisonStats:
    """Score the champion at `model_uri` on the test split and compare it with this run's predictions."""
    cfg = params.gate.champion
    labels: list[str] = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    mine = read_predictions(layout.predictions_csv)
    max_length = int(tokenized_meta(layout)["max_length"])
    pair = "text_pair" in test.columns
    names, confidence = (
        score_pair_champion(model_uri, test)
        if pair
        else score_champion(model_uri, test["text"].tolist(), max_length, params.evaluate.batch_size)
    )
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    shown = ["text", *(["text_pair"] if pair else []), "label", "source_file", "source_row"]
    champion_rows = test[shown].assign(prediction=names, confidence=np.round(confidence, 4))
    champion_rows.to_csv(layout.champion_predictions_csv, index=False)
    references = test["label_id"].to_numpy(dtype=np.int64)
    challenger = label_ids(mine["prediction"].tolist(), labels)
    champion = label_ids(names, labels)  # a label this run lacks: wrong
    groups = (
        slice_values(test, cfg.slice_column, params.data)
        if cfg.slice_column
        else test["label"].astype(str).tolist()
    )
    boot, test_result, deltas = compare_predictions(
        references, champion, challenger, len(labels), groups, cfg, metric
    )
    return ComparisonStats(boot, test_result, deltas, cfg.slice_column or "class", "recall")
