"""Fine-tuning an encoder to predict a number with the Hugging Face `Trainer`: a one-output head
(`problem_type="regression"`, MSE loss) on the target standardised by the train split's mean and
standard deviation, which stay in the model's config (`target_mean`, `target_std`) so evaluation
and serving answer in the target's own units; metrics on the validation split, early stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from datasets import DatasetDict
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)
from transformers.trainer_utils import set_seed

from tasks.core.config import LoraSettings, TrainConfig
from tasks.models.lora import apply_lora, quantization_config
from tasks.task_types.regression.metrics import regression_metrics
from tasks.task_types.regression.records import target_scale
from tasks.training.arguments import early_stopping, evaluates, training_arguments
from tasks.training.checkpoints import fit
from tasks.training.sampling import LengthGroupedTrainer


def load_base_model(
    model_dir: Path, target: str, scale: tuple[float, float], lora: LoraSettings
) -> PreTrainedModel:
    """The base encoder with a new one-output regression head named `target` (LoRA-wrapped), its
    config carrying the target's scale."""
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir),
        num_labels=1,
        problem_type="regression",
        id2label={0: target},
        label2id={target: 0},
        ignore_mismatched_sizes=True,
        quantization_config=quantization_config(lora),
    )
    model.config.target_mean, model.config.target_std = scale
    return apply_lora(model, lora, "SEQ_CLS")


class ScaledTargets:
    """Dynamic padding, and the batch's targets standardised (float32) for the MSE loss."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, scale: tuple[float, float]) -> None:
        self.pad = DataCollatorWithPadding(tokenizer)
        self.mean, self.std = scale

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.pad(features)
        batch["labels"] = ((batch["labels"].double() - self.mean) / self.std).float()
        return dict(batch)


def _compute_metrics(scale: tuple[float, float]) -> Any:
    mean, std = scale

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        outputs = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        predicted = np.asarray(outputs, dtype=np.float64).reshape(-1) * std + mean
        actual = np.asarray(prediction.label_ids, dtype=np.float64).reshape(-1) * std + mean
        return regression_metrics(predicted, actual)

    return compute


def train_regressor(
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    target: str,
    cfg: TrainConfig,
    output_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """Train (resuming an interrupted run in `output_dir`), return the trainer and a summary."""
    set_seed(cfg.seed)  # the new head is initialised here, before the Trainer seeds: reproducible runs
    scale = target_scale(np.asarray(tokenized["train"].with_format(None)["labels"], dtype=np.float64))
    evaluate = evaluates(len(tokenized["validation"]))
    trainer = LengthGroupedTrainer(
        length_group_batches=cfg.length_group_batches,
        model=load_base_model(model_dir, target, scale, cfg.lora),
        args=training_arguments(cfg, output_dir, evaluate),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if evaluate else None,
        data_collator=ScaledTargets(tokenizer, scale),
        processing_class=tokenizer,
        compute_metrics=_compute_metrics(scale),
        callbacks=[*early_stopping(cfg, evaluate), *(callbacks or [])],
    )
    # the loss is a mean over its own batch and ignores `num_items_in_batch` (as for a classifier)
    trainer.model_accepts_loss_kwargs = False
    summary = {
        "target_mean": scale[0],
        "target_std": scale[1],
        "validation_examples": len(tokenized["validation"]),
    }
    return trainer, {**fit(trainer, cfg, output_dir), **summary}
