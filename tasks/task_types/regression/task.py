"""`regression`: the task type's answers for every step, from its modules and the encoder ones
it shares with the classifier (tokenization, nested-value and column checks, text checks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.core.config import Params
from tasks.core.hashing import code_version
from tasks.core.layout import RunLayout
from tasks.data.splitting import Splits
from tasks.task_types.base import TaskType
from tasks.task_types.regression.outputs import scatter_png
from tasks.validation.report import ValidationResult

if TYPE_CHECKING:  # types only: a cached run never loads these libraries
    from datasets import DatasetDict
    from mlflow.models.model import ModelInfo
    from transformers import Trainer, TrainerCallback

    from tasks.comparison.champion import ComparisonStats

TARGET = "target"  # the split frames' column the model learns (in the data's units)


class RegressionTask(TaskType):
    """One text (or a pair of texts) in, one number out: a score, a rating, a similarity."""

    name = "regression"
    metrics = (
        "rmse",
        "mae",
        "mse",
        "r2",
        "pearson",
        "spearman",
        "neg_mae",
    )  # neg_mae: -mae, for the champion
    champion_metrics = ("neg_mae",)
    selection_metrics = ("rmse", "mae", "mse", "r2", "pearson", "spearman", "loss")

    def check_params(self, params: Params) -> None:
        super().check_params(params)
        self.check_gate_metrics(params)

    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        from tasks.task_types.classification.records import require_flat_values
        from tasks.task_types.regression.validation import validate_frames

        for frame in frames.values():
            require_flat_values(frame, params.data)
        return validate_frames(frames, params.data, params.validate_)

    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        from tasks.task_types.regression.records import split_examples

        return split_examples(frames, params.data)

    def tokenization_key(self, splits: Splits, params: Params) -> str:
        from tasks.task_types.classification.tokenization import content_key

        return content_key(splits, params.tokenize, target_column=TARGET)

    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        from tasks.task_types.classification.tokenization import tokenize

        return tokenize(splits, model_dir, params.tokenize, target_column=TARGET)

    def training_code(self) -> str:
        here = Path(__file__).parent
        return code_version(here / "training.py", here / "records.py", here.parents[1] / "models" / "lora.py")

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
        from tasks.task_types.regression.training import train_regressor

        tokenizer = load_tokenizer(model_dir)
        target = params.data.label_column
        return train_regressor(tokenized, tokenizer, model_dir, target, params.train, output_dir, callbacks)

    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        from tasks.models.lora import save_trained
        from tasks.models.tokenizers import load_tokenizer

        facts = save_trained(trainer.model, layout.model_dir, model_dir)
        load_tokenizer(model_dir).save_pretrained(str(layout.model_dir))
        return facts

    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        from tasks.task_types.regression.evaluation import evaluate_run

        return evaluate_run(params, layout)

    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        return [layout.predictions_csv, scatter_png(layout)]

    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        from tasks.task_types.regression.comparison import compare_champion

        return compare_champion(params, layout, model_uri)

    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        from tasks.task_types.regression.packaging import card_texts

        return card_texts(params)

    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        from tasks.task_types.regression.packaging import log_model

        return log_model(params, layout)
