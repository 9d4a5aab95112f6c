"""`causal_lm`: the task type's answers for every step, from its modules."""

from __future__ import annotations

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


class CausalLMTask(TaskType):
    """Supervised fine-tuning of a causal LM on instruction or chat records (loss on responses)."""

    name = "causal_lm"
    validation_reads_model = True
    metrics = ("exact_match", "rouge_l", "eval_loss", "perplexity", "not_a_label")
    champion_metrics = ("exact_match", "rouge_l")

    def check_params(self, params: Params) -> None:
        super().check_params(params)
        train = params.train
        if train.early_stopping_patience and train.metric_for_best_model != "loss":
            raise ConfigError("train.metric_for_best_model must be 'loss' when task is causal_lm")

    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        from tasks.task_types.causal_lm.validation import validate_records

        return validate_records(frames, params)

    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        from tasks.task_types.causal_lm.records import split_sft

        return split_sft(frames, params.data, params.sft)

    def tokenization_key(self, splits: Splits, params: Params) -> str:
        from tasks.task_types.causal_lm.tokenization import content_key

        return content_key(splits, params)

    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        from tasks.task_types.causal_lm.tokenization import tokenize

        return tokenize(splits, model_dir, params)

    def training_code(self) -> str:
        import trl

        here = Path(__file__).parent
        version = code_version(here / "training.py", here.parents[1] / "models" / "lora.py")
        return f"{version} trl {trl.__version__}"

    def train(
        self,
        tokenized: DatasetDict,
        model_dir: Path,
        labels: list[str],
        params: Params,
        output_dir: Path,
        callbacks: list[TrainerCallback] | None = None,
    ) -> tuple[Trainer, dict[str, Any]]:
        from tasks.task_types.causal_lm.templating import load_chat_tokenizer
        from tasks.task_types.causal_lm.training import train_causal_lm

        tokenizer = load_chat_tokenizer(model_dir)
        return train_causal_lm(
            tokenized, tokenizer, model_dir, params.train, output_dir, callbacks, packing=params.sft.packing
        )

    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        from tasks.task_types.causal_lm.training import save_causal_lm

        return save_causal_lm(trainer, model_dir, layout)

    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        from tasks.task_types.causal_lm.generation import evaluate_run

        return evaluate_run(params, layout)

    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        return [layout.generations_csv]

    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        from tasks.task_types.causal_lm.comparison import compare_generations

        return compare_generations(params, layout, model_uri, self.champion_metric(params))

    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        from tasks.task_types.causal_lm.packaging import card_texts

        return card_texts(params, labels)

    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        from tasks.task_types.causal_lm.packaging import example_prompts, log_causal_lm

        return log_causal_lm(params, layout, card, example_prompts(layout))
