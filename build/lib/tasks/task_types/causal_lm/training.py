"""Fine-tuning a causal language model on templated instruction / chat examples.

`AutoModelForCausalLM` with LoRA adapters (PEFT) when `train.lora.enabled`, else full fine-tuning;
QLoRA only where CUDA and bitsandbytes are present. The loss covers response tokens only (the
tokenize step labels prompt positions -100). The shared Trainer arguments, checkpoints and
resume come from tasks/training/; eval loss selects the best checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import DatasetDict
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)

from tasks.core.config import TrainConfig
from tasks.core.layout import RunLayout
from tasks.models.lora import ADAPTER_DIR, apply_lora, quantization_config, save_trained
from tasks.task_types.causal_lm.templating import IGNORE, load_chat_tokenizer
from tasks.training.arguments import training_arguments
from tasks.training.checkpoints import fit


def load_causal_model(
    model_dir: Path, tokenizer: PreTrainedTokenizerBase, cfg: TrainConfig
) -> PreTrainedModel:
    """The base causal LM, its padding id set from the tokenizer, wrapped with LoRA when enabled."""
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), quantization_config=quantization_config(cfg.lora)
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return apply_lora(model, cfg.lora, "CAUSAL_LM")


def collator(tokenizer: PreTrainedTokenizerBase) -> DataCollatorForSeq2Seq:
    """Dynamic padding: ids with the pad token, labels with -100 (no loss on padding)."""
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, padding=True, return_tensors="pt")


def train_causal_lm(
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    cfg: TrainConfig,
    output_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """Train (resuming an interrupted run in `output_dir`); return the trainer and a summary."""
    trainer = Trainer(
        model=load_causal_model(model_dir, tokenizer, cfg),
        args=training_arguments(cfg, output_dir),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if len(tokenized["validation"]) else None,
        data_collator=collator(tokenizer),
        processing_class=tokenizer,
        callbacks=[
            *([EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []),
            *(callbacks or []),
        ],
    )
    return trainer, fit(trainer, cfg, output_dir)


def save_causal_lm(trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
    """The merged model (and the adapter alone, when LoRA) with the tokenizer and chat template used."""
    facts = save_trained(trainer.model, layout.model_dir, model_dir)
    tokenizer = load_chat_tokenizer(model_dir)
    for target in (layout.model_dir, layout.model_dir / ADAPTER_DIR):
        if target.is_dir():
            tokenizer.save_pretrained(str(target))
    return facts
