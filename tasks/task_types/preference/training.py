"""DPO on preference pairs with TRL's `DPOTrainer`: TRL's loss, our tokenized ids and arguments.

The model is the SFT task type's (`load_causal_model`: the base causal LM, with LoRA adapters
when `train.lora.enabled`). The reference is the base model: TRL keeps a frozen copy of it for
full fine-tuning and, with LoRA, a frozen copy of the fresh (zero) adapter, i.e. the base again.
The tokenize step already templated and cut every pair, so TRL's own dataset preparation is
skipped (`PretokenizedDPOTrainer`) and its truncation is off. The shared Trainer arguments,
checkpoints and resume come from tasks/training/; eval loss selects the best checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback
from transformers.trainer_utils import set_seed
from trl import DPOConfig, DPOTrainer

from tasks.core.config import PreferenceConfig, TrainConfig
from tasks.core.layout import RunLayout
from tasks.task_types.causal_lm.training import load_causal_model, save_causal_lm
from tasks.training.arguments import argument_values, early_stopping, evaluates
from tasks.training.checkpoints import fit

REFERENCE_ADAPTER = "ref"  # TRL's frozen copy of the initial LoRA adapter: not part of the result


class PretokenizedDPOTrainer(DPOTrainer):
    """`DPOTrainer` on datasets that already hold `prompt_ids` / `chosen_ids` / `rejected_ids`."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        return dataset


def dpo_loss_types() -> tuple[str, ...]:
    """The DPO losses the installed TRL offers, read from its config's documented choices."""
    import re

    from trl import DPOConfig

    text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    head = text.split("If multiple")[0]
    return tuple(re.findall(r"`'([a-z_]+)'`", head))


def dpo_config(cfg: TrainConfig, pref: PreferenceConfig, output_dir: Path, evaluate: bool) -> DPOConfig:
    """TRL's DPO config from the shared Trainer arguments and `preference:`; TRL's own truncation
    and activation checkpointing off (the tokenize step cut every pair already); no batches grouped
    by length (a pair has no single `input_ids` to measure)."""
    values = {**argument_values(cfg, output_dir, evaluate), "train_sampling_strategy": "random"}
    return DPOConfig(
        **values,
        beta=pref.beta,
        loss_type=[pref.loss_type],
        max_length=None,
        activation_checkpointing=False,
        remove_unused_columns=False,
    )


def train_dpo(
    tokenized: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    cfg: TrainConfig,
    pref: PreferenceConfig,
    output_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """Train with DPO (resuming an interrupted run in `output_dir`); the trainer and a summary."""
    set_seed(cfg.seed)  # LoRA's adapters are initialised here, before the Trainer seeds
    evaluate = evaluates(len(tokenized["validation"]))
    validation: Dataset | None = tokenized["validation"] if evaluate else None
    trainer = PretokenizedDPOTrainer(
        model=load_causal_model(model_dir, tokenizer, cfg),
        args=dpo_config(cfg, pref, output_dir, evaluate),
        train_dataset=tokenized["train"],
        eval_dataset=validation,
        processing_class=tokenizer,
        callbacks=[*early_stopping(cfg, evaluate), *(callbacks or [])],
    )
    return trainer, {**fit(trainer, cfg, output_dir), "validation_pairs": len(tokenized["validation"])}


def save_dpo(trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
    """The trained policy as SFT saves it (merged, and the adapter alone with LoRA), without TRL's
    reference adapter."""
    model = trainer.model
    if REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
        model.delete_adapter(REFERENCE_ADAPTER)  # type: ignore[union-attr,operator]
    return save_causal_lm(trainer, model_dir, layout)
