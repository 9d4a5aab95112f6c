"""`token_classification`: the task type's answers for every step, from its modules."""

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


class TokenClassificationTask(TaskType):
    """A tag for every word of a sentence (named entities in IOB2 / IOE2 / IOBES / BILOU), scored by
    entity with seqeval."""

    name = "token_classification"
    metrics = ("f1", "precision", "recall", "accuracy")
    champion_metrics = ("f1",)
    selection_metrics = ("f1", "precision", "recall", "accuracy", "loss")

    def check_params(self, params: Params) -> None:
        super().check_params(params)
        self.check_gate_metrics(params)

    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        from tasks.task_types.token_classification.validation import validate_sentences

        return validate_sentences(frames, params)

    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        from tasks.task_types.token_classification.records import split_sentences

        return split_sentences(frames, params.data, params.token_classification)

    def tokenization_key(self, splits: Splits, params: Params) -> str:
        from tasks.task_types.token_classification.tokenization import content_key

        return content_key(splits, params.tokenize)

    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        from tasks.task_types.token_classification.tokenization import tokenize

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
        from tasks.task_types.token_classification.training import train_token_classifier

        tokenizer = load_tokenizer(model_dir)
        return train_token_classifier(
            tokenized,
            tokenizer,
            model_dir,
            labels,
            params.train,
            params.token_classification,
            output_dir,
            callbacks,
        )

    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        from tasks.models.lora import save_trained
        from tasks.models.tokenizers import load_tokenizer

        facts = save_trained(trainer.model, layout.model_dir, model_dir)
        load_tokenizer(model_dir).save_pretrained(str(layout.model_dir))
        return facts

    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        from tasks.task_types.token_classification.evaluation import evaluate_run

        return evaluate_run(params, layout)

    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        return [layout.per_class_csv, layout.predictions_csv]

    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        from tasks.task_types.token_classification.comparison import compare_entities

        return compare_entities(params, layout, model_uri)

    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        from tasks.task_types.token_classification.packaging import card_texts

        return card_texts(params, labels)

    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        from tasks.task_types.token_classification.packaging import log_model

        return log_model(layout)
