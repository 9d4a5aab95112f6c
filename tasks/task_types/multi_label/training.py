"""Fine-tuning a multi-label classifier with the Hugging Face `Trainer`: a new head of one sigmoid per
label (BCE-with-logits loss, `problem_type="multi_label_classification"`), optionally LoRA-wrapped,
dynamic padding, metrics on the validation split and early stopping on `train.metric_for_best_model`;
then the saved model's thresholds, chosen on the validation split (`decision.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict
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
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.models.lora import apply_lora, quantization_config, save_trained
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types.multi_label.decision import RULE_KEYS, store_thresholds
from tasks.task_types.multi_label.evaluation import load_classifier, predict_probabilities
from tasks.task_types.multi_label.metrics import choose_thresholds, multi_label_metrics
from tasks.tokenization.cache import load_tokenized, tokenized_meta
from tasks.training.arguments import early_stopping, evaluates, training_arguments
from tasks.training.checkpoints import fit
from tasks.training.sampling import LengthGroupedTrainer


def load_base_model(
    model_dir: Path, labels: list[str], lora: LoraSettings, priors: np.ndarray | None = None
) -> PreTrainedModel:
    """The base encoder with a new head of one sigmoid per label, named for `labels`, its biases
    starting at the log-odds of `priors` (each label's train frequency), LoRA-wrapped."""
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type="multi_label_classification",
        ignore_mismatched_sizes=True,
        quantization_config=quantization_config(lora),
    )
    if priors is not None:
        start_at_priors(model, priors)
    return apply_lora(model, lora, "SEQ_CLS")


def label_priors(train: Dataset) -> np.ndarray:
    """Each label's frequency in the multi-hot `labels` of `train`, smoothed ((count + 0.5) / (rows + 1))
    so that a label never (or always) present keeps a finite log-odds."""
    rows = len(train)
    targets = np.asarray(train.with_format(None)["labels"], dtype=np.float64).reshape(rows, -1)
    return (targets.sum(axis=0) + 0.5) / (rows + 1.0)


def start_at_priors(model: PreTrainedModel, priors: np.ndarray) -> bool:
    """Set the output layer's biases to the log-odds of `priors`, so every sigmoid starts at its
    label's train frequency instead of 0.5. From a 0.5 start, most of the first steps' gradient
    asks for one thing: push every logit down (most labels are absent from most rows). With 28
    labels (GoEmotions) the encoder obliged by saturating its pooler, after which every text got
    the same representation and the model answered the majority label for all of them, at any
    learning rate. Returns whether a bias was found (a head without bias starts at 0.5)."""
    head = output_layer(model, len(priors))
    if head is None or head.bias is None:
        return False
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(np.log(priors / (1.0 - priors)), dtype=head.bias.dtype))
    return True


def output_layer(model: torch.nn.Module, labels: int) -> torch.nn.Linear | None:
    """The classification head's last linear layer: the last one registered with one output per
    label (BERT's `classifier`, RoBERTa's `classifier.out_proj`, GPT-2's `score`)."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == labels]
    return layers[-1] if layers else None


def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """Validation metrics during training, each checkpoint at its own best global threshold (the
    decision rule applied once training is over). At a fixed 0.5, a model with many labels
    scores F1 0 for its first epochs, while its sigmoids are all still below 0.5 but already
    rank the labels: early stopping then kept the first epoch (GoEmotions, 28 labels)."""
    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    references = np.asarray(prediction.label_ids) >= 0.5
    [threshold, *_] = choose_thresholds(probabilities, references, "global", 0.5)
    return {**multi_label_metrics(references, probabilities >= threshold), "threshold": threshold}


def train_multi_label(
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
        model=load_base_model(model_dir, labels, cfg.lora, label_priors(tokenized["train"])),
        args=training_arguments(cfg, output_dir, evaluate),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if evaluate else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[*early_stopping(cfg, evaluate), *(callbacks or [])],
    )
    # the BCE loss is a mean over its own batch and ignores `num_items_in_batch` (as the classifier's)
    trainer.model_accepts_loss_kwargs = False
    return trainer, {**fit(trainer, cfg, output_dir), "validation_examples": len(tokenized["validation"])}


def save_multi_label(trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
    """Save the trained model and tokenizer into `layout.model_dir`, then choose and store its
    thresholds on the validation split (on this process alone: rank 0 of a launched training)."""
    facts = save_trained(trainer.model, layout.model_dir, model_dir)
    load_tokenizer(model_dir).save_pretrained(str(layout.model_dir))
    validation = load_tokenized(layout)["validation"]
    batch_size = int(trainer.args.per_device_eval_batch_size)
    facts |= decide_on_validation(layout.model_dir, validation, tokenized_meta(layout), batch_size)
    return facts


def decide_on_validation(
    model_dir: Path, validation: Any, meta: dict[str, Any], batch_size: int
) -> dict[str, Any]:
    """Choose the thresholds of the model (and tokenizer) saved in `model_dir` on the tokenized
    `validation` split (multi-hot `labels`) by the rule in `meta`; store them; return facts for the
    training summary."""
    missing = [key for key in RULE_KEYS if key not in meta]
    if missing:
        raise RefineryError(f"tokenized splits: no {missing[0]} recorded; re-run the tokenize step")
    rule, default = str(meta["threshold_rule"]), float(meta["default_threshold"])
    model, labels = load_classifier(model_dir)
    rows = len(validation)
    if rows:
        probabilities = predict_probabilities(model, load_tokenizer(model_dir), validation, batch_size)
        references = np.asarray(validation.with_format(None)["labels"], dtype=np.int64).reshape(rows, -1)
    else:
        probabilities = np.zeros((0, len(labels)), dtype=np.float32)
        references = np.zeros((0, len(labels)), dtype=np.int64)
    thresholds = choose_thresholds(probabilities, references, rule, default)
    store_thresholds(model_dir, thresholds, rule, rows)
    facts: dict[str, Any] = {"threshold_mean": float(np.mean(thresholds))}
    if rows:
        decided = multi_label_metrics(references, probabilities >= np.asarray(thresholds))
        facts["validation_f1_micro_at_thresholds"] = decided["f1_micro"]
    return facts
