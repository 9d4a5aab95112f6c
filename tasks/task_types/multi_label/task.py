"""`multi_label_classification`: the task type's answers for every step, from its modules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import ConfigError
from tasks.core.hashing import code_version
from tasks.core.layout import RunLayout
from tasks.data.splitting import Splits
from tasks.task_types.base import TaskType
from tasks.validation.report import ValidationResult

if TYPE_CHECKING:  # types only: a cached run never loads these libraries
    from datasets import DatasetDict
    from mlflow.models.model import ModelInfo
    from transformers import Trainer, TrainerCallback

    from tasks.comparison.champion import ComparisonStats


def threshold_rule(params: Params) -> dict[str, Any]:
    """How the thresholds are chosen after training, recorded with the tokenized splits (and so in
    the key of the training that is decided by it)."""
    return {
        "threshold_rule": params.multi_label.threshold,
        "default_threshold": params.multi_label.default_threshold,
    }


class MultiLabelTask(TaskType):
    """One text in, any number of labels of a fixed set out (tags, topics, intents of one message)."""

    name = "multi_label_classification"
    metrics = (
        "f1_micro", "f1_macro", "f1_weighted", "subset_accuracy", "hamming_loss", "precision_micro",
        "recall_micro",
    )  # fmt: skip
    champion_metrics = ("f1_micro", "f1_macro", "subset_accuracy")
    selection_metrics = ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss", "loss")

    def check_params(self, params: Params) -> None:
        super().check_params(params)
        self.check_gate_metrics(params)
        if not params.data.label_delimiter.strip():
            raise ConfigError("data.label_delimiter must be a visible separator such as '|' or ','")

    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        from tasks.task_types.classification.records import label_names
        from tasks.task_types.multi_label.validation import validate_frames

        data = params.data
        known = label_names(pd.Series([], dtype=object), Path(data.labels_path)) if data.labels_path else None
        return validate_frames(frames, data, params.validate_, params.multi_label, known)

    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        from tasks.task_types.multi_label.records import split_frames

        return split_frames(frames, params.data)

    def tokenization_key(self, splits: Splits, params: Params) -> str:
        from tasks.task_types.classification.tokenization import content_key
        from tasks.task_types.multi_label.records import TARGETS

        digest = hashlib.sha256(content_key(splits, params.tokenize, target_column=TARGETS).encode())
        digest.update(json.dumps(threshold_rule(params), sort_keys=True).encode())
        return digest.hexdigest()

    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        from tasks.task_types.classification.tokenization import tokenize
        from tasks.task_types.multi_label.records import TARGETS

        dataset, facts = tokenize(splits, model_dir, params.tokenize, target_column=TARGETS)
        return dataset, {**facts, **threshold_rule(params)}

    def training_code(self) -> str:
        # the thresholds are part of the trained model: the code that chooses them counts too
        here = Path(__file__).parent
        modules = [here / f"{name}.py" for name in ("training", "decision", "metrics", "evaluation")]
        return code_version(*modules, here.parents[1] / "models" / "lora.py")

    def train(
        self,
        tokenized: DatasetDict,
        model_dir: Path,
        labels: list[str],
        params: Params,
        output_dir: Path,
        callbacks: list[TrainerCallback] | None = None,
    ) -> tuple[Trainer, dict[str, Any]]:
        from tasks.models.tokenizers import load_tokenizer
        from tasks.task_types.multi_label.training import train_multi_label

        tokenizer = load_tokenizer(model_dir)
        return train_multi_label(tokenized, tokenizer, model_dir, labels, params.train, output_dir, callbacks)

    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        from tasks.task_types.multi_label.training import save_multi_label

        return save_multi_label(trainer, model_dir, layout)

    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        from tasks.task_types.multi_label.evaluation import evaluate_run

        return evaluate_run(params, layout)

    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        return [layout.per_class_csv, layout.per_class_f1_png, layout.predictions_csv]

    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        from tasks.task_types.multi_label.comparison import compare_champion

        return compare_champion(params, layout, model_uri, self.champion_metric(params))

    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        from tasks.task_types.multi_label.packaging import card_texts

        return card_texts(params, labels)

    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        # the card is logged with the run (model_card.md); the pyfunc carries the decision rule
        from tasks.task_types.multi_label.packaging import log_model

        return log_model(params, layout)
