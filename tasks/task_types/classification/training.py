"""Fine-tuning a sequence classifier with the Hugging Face `Trainer`: a new head sized and named
for the labels (optionally LoRA-wrapped), dynamic padding, metrics on the validation split and
early stopping on `train.metric_for_best_model`."""

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
from tasks.task_types.classification.evaluation import classification_metrics
from tasks.training.arguments import early_stopping, evaluates, training_arguments
from tasks.training.checkpoints import fit
from tasks.training.sampling import LengthGroupedTrainer


def load_base_model(model_dir: Path, labels: list[str], lora: LoraSettings) -> PreTrainedModel:
    """The base encoder with a new classification head sized and named for `labels` (LoRA-wrapped)."""
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,
        quantization_config=quantization_config(lora),
    )
    return apply_lora(model, lora, "SEQ_CLS")


def _compute_metrics(num_labels: int) -> Any:
    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        return classification_metrics(
            np.argmax(logits, axis=-1).tolist(), np.asarray(prediction.label_ids).tolist(), num_labels
        )

    return compute


def train_classifier(
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    labels: list[str],
    cfg: TrainConfig,
    output_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """Train (resuming an interrupted run in `output_dir`), return the trainer and a summary."""
    set_seed(cfg.seed)  # the new head is initialised here, before the Trainer seeds: reproducible runs
    evaluate = evaluates(len(tokenized["validation"]))
    trainer = LengthGroupedTrainer(
        length_group_batches=cfg.length_group_batches,
        model=load_base_model(model_dir, labels, cfg.lora),
        args=training_arguments(cfg, output_dir, evaluate),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if evaluate else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=_compute_metrics(len(labels)),
        callbacks=[*early_stopping(cfg, evaluate), *(callbacks or [])],
    )
    # the classifier's loss is a mean over its own batch and ignores `num_items_in_batch`: the Trainer
    # must not multiply it by the number of ranks (DDP already averages the gradients)
    trainer.model_accepts_loss_kwargs = False
    return trainer, {**fit(trainer, cfg, output_dir), "validation_examples": len(tokenized["validation"])}
