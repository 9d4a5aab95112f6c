"""`sequence_classification`: the task type's answers for every step, from its modules."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.core.config import Params
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


class ClassificationTask(TaskType):
    """One text in, one label out of a fixed set (intents, topics, sentiment, ...)."""

    name = "sequence_classification"
    metrics = ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro")
    champion_metrics = ("accuracy", "f1_macro")
    selection_metrics = ("accuracy", "f1_macro", "f1_weighted", "loss")

    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        from tasks.task_types.classification.records import label_names, normalise_labels, require_flat_values
        from tasks.task_types.classification.validation import validate_frames

        data = params.data
        for frame in frames.values():
            require_flat_values(frame, data)
        frames = normalise_labels(frames, data.label_column)
        known = (
            label_names(frames["train"][data.label_column], Path(data.labels_path))
            if data.labels_path and data.label_column in frames["train"].columns
            else None
        )
        return validate_frames(frames, data, params.validate_, known)

    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        from tasks.task_types.classification.records import split_frames

        return split_frames(frames, params.data)

    def tokenization_key(self, splits: Splits, params: Params) -> str:
        from tasks.task_types.classification.tokenization import content_key

        return content_key(splits, params.tokenize)

    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        from tasks.task_types.classification.tokenization import tokenize

        return tokenize(splits, model_dir, params.tokenize)

    def training_code(self) -> str:
        here = Path(__file__).parent
        return code_version(here / "training.py", here.parents[1] / "models" / "lora.py")

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
        from tasks.task_types.classification.training import train_classifier

        tokenizer = load_tokenizer(model_dir)
        return train_classifier(tokenized, tokenizer, model_dir, labels, params.train, output_dir, callbacks)

    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        from tasks.models.lora import save_trained
        from tasks.models.tokenizers import load_tokenizer

        facts = save_trained(trainer.model, layout.model_dir, model_dir)
        load_tokenizer(model_dir).save_pretrained(str(layout.model_dir))
        return facts

    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        from tasks.task_types.classification.evaluation import evaluate_run

        return evaluate_run(params, layout)

    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        return [layout.per_class_csv, layout.confusion_png, layout.per_class_f1_png, layout.predictions_csv]

    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        from tasks.task_types.classification.comparison import compare_champion

        return compare_champion(params, layout, model_uri, self.champion_metric(params))

    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        from tasks.task_types.classification.packaging import card_texts

        return card_texts(params, labels)

    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        from tasks.task_types.classification.packaging import example_texts, log_model, log_pair_model

        if params.data.text_pair_column is not None:
            return log_pair_model(params, layout)
        return log_model(layout, card, example_texts(layout))
