"""Fine-tuning a causal language model on templated instruction / chat examples, with TRL.

`AutoModelForCausalLM` with LoRA adapters (PEFT) when `train.lora.enabled`, else full fine-tuning;
QLoRA only where CUDA and bitsandbytes are present. TRL's `SFTTrainer` trains on the tokenize
step's ids and labels (-100 on every prompt position, so the loss covers responses only); with
`sft.packing` it packs whole train examples best-fit-decreasing into padding-free sequences whose
examples do not attend to each other. The shared Trainer arguments, checkpoints and resume come
from tasks/training/; eval loss selects the best checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import DatasetDict
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)
from transformers.trainer_utils import set_seed
from trl import SFTConfig, SFTTrainer

from tasks.core.config import TrainConfig
from tasks.core.layout import RunLayout
from tasks.models.lora import ADAPTER_DIR, apply_lora, quantization_config, save_trained
from tasks.task_types.causal_lm.templating import IGNORE, load_chat_tokenizer
from tasks.training.arguments import argument_values, early_stopping, evaluates
from tasks.training.checkpoints import fit
from tasks.training.sampling import LengthGroupedTrainerMixin


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


def sft_config(
    cfg: TrainConfig, output_dir: Path, pack_length: int | None, evaluate: bool = True
) -> SFTConfig:
    """TRL's config from the shared Trainer arguments; TRL's own defaults (bf16, checkpointing,
    truncation at 1024) replaced by ours: the tokenize step already cut at max_length.

    `pack_length`: pack train examples into sequences of at most this many tokens; None: no packing.
    """
    packing = pack_length is not None
    return SFTConfig(
        **argument_values(cfg, output_dir, evaluate),
        activation_checkpointing=False,
        max_length=pack_length,
        packing=packing,
        packing_strategy="bfd",  # whole examples, best fit; padding-free: no attention across examples
        eval_packing=False,
        completion_only_loss=None,  # our labels already hold -100 on every prompt position
        assistant_only_loss=False,
        dataset_kwargs=None if packing else {"skip_prepare_dataset": True},
    )


class LengthGroupedSFTTrainer(LengthGroupedTrainerMixin, SFTTrainer):
    """TRL's `SFTTrainer` with Refinery's length-grouped batches in random order (training/sampling.py)."""


def train_causal_lm(
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    cfg: TrainConfig,
    output_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
    packing: bool = False,
) -> tuple[Trainer, dict[str, Any]]:
    """Train (resuming an interrupted run in `output_dir`); return the trainer and a summary.

    `tokenized` must be in memory (`load_from_disk(..., keep_in_memory=True)`): TRL's packing maps
    the dataset and would otherwise write cache files into the run's tokenized folder.
    """
    set_seed(cfg.seed)  # LoRA's adapters are initialised here, before the Trainer seeds
    # packs as long as the longest train example: max_length, unless tokenize.max_length is longer
    longest = max((len(ids) for ids in tokenized["train"]["input_ids"]), default=0)
    evaluate = evaluates(len(tokenized["validation"]))
    trainer = LengthGroupedSFTTrainer(
        length_group_batches=cfg.length_group_batches,
        model=load_causal_model(model_dir, tokenizer, cfg),
        args=sft_config(cfg, output_dir, longest if packing else None, evaluate),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if evaluate else None,
        processing_class=tokenizer,
        callbacks=[*early_stopping(cfg, evaluate), *(callbacks or [])],
    )
    return trainer, {**fit(trainer, cfg, output_dir), "validation_examples": len(tokenized["validation"])}


def save_causal_lm(trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
    """The merged model (and the adapter alone, when LoRA) with the tokenizer and chat template used."""
    facts = save_trained(trainer.model, layout.model_dir, model_dir)
    tokenizer = load_chat_tokenizer(model_dir)
    for target in (layout.model_dir, layout.model_dir / ADAPTER_DIR):
        if target.is_dir():
            tokenizer.save_pretrained(str(target))
    return facts
