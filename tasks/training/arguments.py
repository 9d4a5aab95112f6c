"""Hugging Face `TrainingArguments` from `train:`, in the precision this hardware runs best.

`train.precision: auto` is bf16 autocast on CUDA (fp16 on GPUs without bf16) and, on a CPU, the
precision study's choice (fp32 without one; tasks/training/precision.py); TF32 matmuls on
Ampere-or-newer GPUs. Every task type's Trainer starts from these arguments.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments

from tasks.core.config import DistributedConfig, TrainConfig
from tasks.core.errors import ConfigError
from tasks.core.files import read_json
from tasks.metrics import LOWER_IS_BETTER
from tasks.training.accelerator_state import configured_state_values
from tasks.training.precision import AUTOCAST, USES_BF16, auto_cpu_precision, cpu_has_native_bf16

log = logging.getLogger(__name__)


def training_precision(requested: str, cuda: bool, cuda_bf16: bool, cpu_auto: str = "fp32") -> str:
    """The variant training runs in for `train.precision` on this hardware (tasks/training/precision.py).

    `auto` is bf16 autocast on CUDA (fp16 on GPUs without bf16) and `cpu_auto` on a CPU: the
    precision study's choice, fp32 without one (one SST-2 run lost 2.2 points in bf16; README,
    Benchmarks).
    """
    if requested == "auto":
        if cuda:
            return "bf16" if cuda_bf16 else "fp16"
        return cpu_auto
    if requested == "fp16" and not cuda:
        raise ConfigError("train.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU")
    if requested in USES_BF16 and cuda and not cuda_bf16:
        raise ConfigError(f"train.precision: this CUDA GPU has no bf16 for {requested}; use fp16 or fp32")
    return requested


def resolved_precision(cfg: TrainConfig) -> str:
    """`training_precision` for the machine this runs on."""
    cuda = torch.cuda.is_available()
    cpu_auto = auto_cpu_precision() if cfg.precision == "auto" and not cuda else "fp32"
    return training_precision(cfg.precision, cuda, cuda and torch.cuda.is_bf16_supported(), cpu_auto)


def warn_if_emulated(precision: str) -> None:
    """bf16 on a CPU without AVX512-BF16/AMX is emulated: slower than fp32, say so."""
    if precision in USES_BF16 and not torch.cuda.is_available() and not cpu_has_native_bf16():
        log.warning(
            "train.precision: %s on a CPU without AVX512-BF16/AMX is emulated: slower than fp32", precision
        )


def hardware_description() -> str:
    """The device a training ran on, for the model card: GPU name, or CPU and its core count."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def cuda_has_tf32() -> bool:
    """A CUDA GPU with TF32 tensor cores (compute capability 8.0 or newer)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def evaluates(validation_rows: int) -> bool:
    """Whether training can evaluate: with no validation examples (`data.validation_fraction: 0`, or a
    dataset too small to give any) it trains without evaluation or early stopping, and says so."""
    if validation_rows == 0:
        log.warning(
            "the validation split is empty (data.validation_fraction): training without evaluation "
            "or early stopping, on the last step's weights"
        )
    return validation_rows > 0


def early_stopping(cfg: TrainConfig, evaluate: bool) -> list[TrainerCallback]:
    """The early-stopping callback `train.early_stopping_patience` asks for, when training evaluates."""
    return (
        [EarlyStoppingCallback(cfg.early_stopping_patience)]
        if evaluate and cfg.early_stopping_patience
        else []
    )


DDP_TIMEOUT_S = 600  # a rank stuck in a collective this long fails the step instead of hanging


def distributed_values(cfg: DistributedConfig, cuda: bool) -> dict[str, Any]:
    """The `TrainingArguments` of multi-process training: backend, timeout, FSDP or DeepSpeed.

    gloo on a CPU, NCCL on CUDA. FSDP shards parameters with the Trainer's own fsdp options (LoRA
    needs `use_orig_params`); DeepSpeed takes the user's config file and needs CUDA. The CUDA paths
    (NCCL, FSDP, DeepSpeed) are checked on a GPU by scripts/cuda_check.py (not in CI).
    """
    if cfg.strategy in ("deepspeed", "fsdp") and not cuda:  # FSDP (v1) needs an accelerator in torch
        raise ConfigError(f"train.distributed.strategy: {cfg.strategy} needs CUDA GPUs; use ddp on a CPU")
    if cfg.strategy == "deepspeed":
        deepspeed_stage(cfg.deepspeed_config)
    if cfg.world_size == 1 and cfg.strategy == "ddp":
        return {}
    values: dict[str, Any] = {
        "ddp_backend": "nccl" if cuda else "gloo",
        "ddp_timeout": DDP_TIMEOUT_S,
        # every trainable parameter (full model, or LoRA adapters and head) takes part in each forward:
        # no extra graph walk per step looking for unused ones
        "ddp_find_unused_parameters": False,
    }
    if cfg.strategy == "fsdp":
        values["fsdp"] = "full_shard auto_wrap"
        # FSDP1: FSDP2 (transformers' default since 5.x) failed on an H200 with transformers 5.24,
        # accelerate 1.15 and torch 2.11 in accelerate's fsdp2_prepare_model (the input embeddings
        # sharded twice; with LoRA, a mixed Tensor/DTensor embedding); FSDP1 trained both there
        values["fsdp_config"] = {"version": 1, "use_orig_params": True, "sync_module_states": True}
    if cfg.strategy == "deepspeed":
        values["deepspeed"] = cfg.deepspeed_config
    return values


def deepspeed_stage(config: str | None) -> int:
    """The ZeRO stage of `train.distributed.deepspeed_config`: 0, 1 or 2; a one-line error otherwise.

    Stage 3 shards the parameters themselves, and rank 0 saves the model it holds: it would write
    its shards, so stage 3 is refused (FSDP shards parameters and gathers them for saving).
    """
    path = Path(config or "")
    try:
        raw = read_json(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"train.distributed.deepspeed_config: cannot read {path} as JSON ({err})") from err
    stage = int(raw.get("zero_optimization", {}).get("stage", 0))
    if stage not in (0, 1, 2):
        raise ConfigError(
            f"train.distributed.deepspeed_config: {path} uses ZeRO stage {stage}; stages 0-2 are supported"
            " (for sharded parameters use strategy fsdp)"
        )
    return stage


def training_arguments(cfg: TrainConfig, output_dir: Path, evaluate: bool = True) -> TrainingArguments:
    """Map params onto `TrainingArguments`, in the precision `train.precision` resolves to here."""
    return TrainingArguments(**argument_values(cfg, output_dir, evaluate))


def argument_values(cfg: TrainConfig, output_dir: Path, evaluate: bool = True) -> dict[str, Any]:
    """The `TrainingArguments` fields params set (also the base of TRL's `SFTConfig`); `evaluate`
    False: no validation split, so no evaluation and no best-model selection."""
    cuda = torch.cuda.is_available()
    precision = resolved_precision(cfg)
    warn_if_emulated(precision)
    ranks = cfg.distributed.world_size  # train.batch_size is the global batch: each rank takes its share
    stops = evaluate and cfg.early_stopping_patience is not None
    best = f"eval_{cfg.metric_for_best_model}" if stops else None
    return dict(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size // ranks,
        per_device_eval_batch_size=max(1, cfg.eval_batch_size // ranks),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        seed=cfg.seed,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        eval_strategy=cfg.eval_strategy if evaluate else "no",
        save_strategy=cfg.eval_strategy,
        eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps if cfg.eval_steps is not None else 500,
        logging_steps=cfg.logging_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=best is not None,
        metric_for_best_model=best,
        greater_is_better=None if best is None else cfg.metric_for_best_model not in LOWER_IS_BETTER,
        bf16=AUTOCAST[precision] == "bf16",  # bf16_linear's autocast is its own (precision_modes.py)
        fp16=AUTOCAST[precision] == "fp16",
        tf32=True if cuda_has_tf32() else None,  # fp32 matmuls on tensor cores (Ampere and newer)
        torch_compile=cfg.torch_compile,
        use_cpu=not cuda,  # the Trainer accepts bf16 without a GPU only when told it runs on CPU
        dataloader_pin_memory=cuda,
        report_to="none",
        disable_tqdm=not cfg.progress_bars,
        **distributed_values(cfg.distributed, cuda),
        **configured_state_values(),
    )
