"""Fine-tuning a token classifier with the Hugging Face `Trainer`: a new head sized and named for
the tags (optionally LoRA-wrapped), padding of inputs and aligned labels per batch, entity-level
metrics on the validation split and early stopping on `train.metric_for_best_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from datasets import DatasetDict
from transformers import (
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)
from transformers.trainer_utils import set_seed

from tasks.core.config import LoraSettings, TrainConfig
from tasks.core.sections import TokenClassificationConfig
from tasks.models.lora import apply_lora, quantization_config
from tasks.task_types.token_classification.evaluation import entity_metrics, word_tags
from tasks.training.arguments import early_stopping, evaluates, training_arguments
from tasks.training.checkpoints import fit
from tasks.training.sampling import LengthGroupedTrainer


def load_base_model(model_dir: Path, labels: list[str], lora: LoraSettings) -> PreTrainedModel:
    """The base encoder with a new token-classification head sized and named for `labels`."""
    model = AutoModelForTokenClassification.from_pretrained(
        str(model_dir),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,
        quantization_config=quantization_config(lora),
    )
    return apply_lora(model, lora, "TOKEN_CLS")


def _compute_metrics(labels: list[str], cfg: TokenClassificationConfig) -> Any:
    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        predicted, references = np.argmax(logits, axis=-1), np.asarray(prediction.label_ids)
        truth = [word_tags(row, row, labels) for row in references]
        found = [word_tags(guess, row, labels) for guess, row in zip(predicted, references, strict=True)]
        return entity_metrics(truth, found, cfg)

    return compute


def train_token_classifier(
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    labels: list[str],
    cfg: TrainConfig,
    task_cfg: TokenClassificationConfig,
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
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        compute_metrics=_compute_metrics(labels, task_cfg),
        callbacks=[*early_stopping(cfg, evaluate), *(callbacks or [])],
    )
    # the loss is a mean over the batch's tagged tokens and ignores `num_items_in_batch`: the Trainer
    # must not multiply it by the number of ranks (DDP already averages the gradients)
    trainer.model_accepts_loss_kwargs = False
    return trainer, {**fit(trainer, cfg, output_dir), "validation_examples": len(tokenized["validation"])}
