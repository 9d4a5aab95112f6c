"""Fine-tuning a causal language model on templated instruction / chat examples.

`AutoModelForCausalLM` with LoRA adapters (PEFT) when `train.lora.enabled`, else full fine-tuning;
QLoRA only where CUDA and bitsandbytes are present. The loss covers response tokens only (the
tokenize step labels prompt positions -100). The classifier's Trainer settings, checkpoints,
resume and history are reused from tasks/training.py; eval loss selects the best checkpoint.
"""

from __future__ import annotations

import json
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

from tasks.base_models import resolve_base_model
from tasks.config import Params, TrainConfig
from tasks.layout import RunLayout
from tasks.lora import ADAPTER_DIR, apply_lora, quantization_config, save_trained
from tasks.sft_tokenization import IGNORE, load_chat_tokenizer
from tasks.tokenization import META_FILE, load_tokenized
from tasks.training import (
    checkpoint_key,
    fit,
    keep_trained,
    reuse_trained,
    training_arguments,
    write_history,
)


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


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Train on the tokenized splits; save the (merged) model, adapter, tokenizer and history."""
    model_dir = resolve_base_model(params.train.base_model)
    tokenized = load_tokenized(layout)
    tokenized_key = json.loads((layout.tokenized_dir / META_FILE).read_text(encoding="utf-8"))["cache_key"]
    output_dir = Path(params.train.checkpoint_dir) / checkpoint_key(tokenized_key, params.train, model_dir)
    reused = reuse_trained(output_dir, layout, params.train)
    if reused is not None:
        return reused
    tokenizer = load_chat_tokenizer(model_dir)
    trainer, summary = train_causal_lm(tokenized, tokenizer, model_dir, params.train, output_dir)
    summary.update(save_trained(trainer.model, layout.model_dir, model_dir))
    for target in (layout.model_dir, layout.model_dir / ADAPTER_DIR):  # with the chat template used
        if target.is_dir():
            tokenizer.save_pretrained(str(target))
    write_history(trainer, summary, layout)
    keep_trained(output_dir, layout)
    return {**summary, "checkpoint_dir": str(output_dir)}
