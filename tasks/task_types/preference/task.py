"""`preference`: the task type's answers for every step, from its modules and the SFT ones it reuses."""

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


class PreferenceTask(TaskType):
    """Direct preference optimisation of a causal LM on (prompt, chosen, rejected) pairs."""

    name = "preference"
    validation_reads_model = True
    metrics = ("preference_accuracy", "reward_margin", "logp_chosen", "logp_rejected")
    champion_metrics = ("preference_accuracy",)

    def check_params(self, params: Params) -> None:
        super().check_params(params)
        train = params.train
        if train.early_stopping_patience and train.metric_for_best_model != "loss":
            raise ConfigError("train.metric_for_best_model must be 'loss' when task is preference")
        from tasks.task_types.preference.training import dpo_loss_types

        losses = dpo_loss_types()
        if params.preference.loss_type not in losses:
            raise ConfigError(
                f"preference.loss_type must be one of TRL's DPO losses ({', '.join(losses)}), "
                f"got {params.preference.loss_type!r}"
            )

    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        from tasks.task_types.preference.validation import validate_pairs

        return validate_pairs(frames, params)

    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        from tasks.task_types.preference.records import split_pairs

        return split_pairs(frames, params.data, params.preference)

    def tokenization_key(self, splits: Splits, params: Params) -> str:
        from tasks.task_types.preference.tokenization import content_key

        return content_key(splits, params)

    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        from tasks.task_types.preference.tokenization import tokenize

        return tokenize(splits, model_dir, params)

    def training_code(self) -> str:
        import trl

        here = Path(__file__).parent
        version = code_version(
            here / "training.py",
            here.parent / "causal_lm" / "training.py",
            here.parents[1] / "models" / "lora.py",
        )
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
        from tasks.task_types.preference.training import train_dpo

        tokenizer = load_chat_tokenizer(model_dir)
        return train_dpo(
            tokenized, tokenizer, model_dir, params.train, params.preference, output_dir, callbacks
        )

    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        from tasks.task_types.preference.training import save_dpo

        return save_dpo(trainer, model_dir, layout)

    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        from tasks.task_types.preference.evaluation import evaluate_run

        return evaluate_run(params, layout)

    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        from tasks.task_types.preference.evaluation import preferences_csv

        return [preferences_csv(layout), layout.generations_csv]

    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        from tasks.task_types.preference.comparison import compare_preferences

        return compare_preferences(params, layout, model_uri)

    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        how = "LoRA adapters merged into" if params.train.lora.enabled else "full fine-tuning of"
        summary = (
            f"Preference-tuned causal language model (DPO, beta {params.preference.beta:g}, loss "
            f"{params.preference.loss_type}): {how} `{params.train.base_model}`, registered as the "
            f"{params.register_.causal_lm_format} model."
        )
        limitations = (
            "- Trained to prefer the `chosen` answers of its pairs over the `rejected` ones; it can still\n"
            "  state wrong things fluently. Preference accuracy and reward margins on the held-out pairs\n"
            "  are in `eval/preferences.csv`, sample generations in `eval/generations.csv`.\n"
            "- Prompts are rendered with the chat template stored with the tokenizer. Keep a person in\n"
            "  the loop for decisions that affect customers.\n"
        )
        return summary, limitations

    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        from tasks.task_types.causal_lm.packaging import example_prompts, log_causal_lm

        return log_causal_lm(params, layout, card, example_prompts(layout))
