"""Low-rank adaptation (LoRA, PEFT) shared by every task type's training.

Target modules: `train.lora.target_modules` when given (a list, or "all-linear"), else PEFT's own
default for the architecture; a model type PEFT has no default for needs the key. QLoRA (4-bit
base weights) needs CUDA and bitsandbytes and is refused with one line elsewhere.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import PreTrainedModel

from tasks.core.config import LoraSettings
from tasks.core.errors import RefineryError

ADAPTER_DIR = "adapter"  # inside the trained model directory: the LoRA weights alone


def target_modules(model_type: str, cfg: LoraSettings) -> list[str] | str:
    """`train.lora.target_modules` when given, else PEFT's default for `model_type`."""
    if cfg.target_modules:
        return cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    default = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
    if not default:
        raise RefineryError(
            f"train.lora.target_modules: PEFT has no default for model type '{model_type}'; set it to "
            "a list of module names or 'all-linear'"
        )
    return list(default)


def quantization_config(cfg: LoraSettings) -> Any:
    """The 4-bit BitsAndBytes config for QLoRA, or None; a clear error where it cannot run."""
    if not cfg.quantize_4bit:
        return None
    if not cfg.enabled:
        raise RefineryError("train.lora.quantize_4bit needs train.lora.enabled: true (QLoRA)")
    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise RefineryError(
            "train.lora.quantize_4bit (QLoRA) needs a CUDA GPU and the bitsandbytes package; "
            "set it to false to train LoRA on full-precision weights"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
    )


def apply_lora(model: PreTrainedModel, cfg: LoraSettings, task_type: str) -> PreTrainedModel:
    """Wrap `model` with trainable adapters (`task_type`: CAUSAL_LM or SEQ_CLS); the base is frozen."""
    if not cfg.enabled:
        return model
    if cfg.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    config = LoraConfig(
        task_type=task_type,
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=target_modules(str(model.config.model_type), cfg),
    )
    wrapped: PreTrainedModel = get_peft_model(model, config)  # type: ignore[assignment]
    return wrapped


def save_trained(model: Any, model_dir: Path, base_model_dir: Path) -> dict[str, Any]:
    """Save the trained weights to `model_dir`: merged into the base when adapters were trained.

    The adapter alone goes to `model_dir/adapter`, its config pointing at `base_model_dir`, so
    registration can choose between the merged model and adapter + base reference.
    """
    shutil.rmtree(model_dir, ignore_errors=True)
    if not isinstance(model, PeftModel):
        model.save_pretrained(str(model_dir))
        return {"lora": False}
    trainable, total = model.get_nb_trainable_parameters()
    adapter_dir = model_dir / ADAPTER_DIR
    model.save_pretrained(str(adapter_dir))
    for config in model.peft_config.values():
        config.base_model_name_or_path = str(base_model_dir.resolve())
    model.peft_config["default"].save_pretrained(str(adapter_dir))
    merged = model.merge_and_unload()
    merged.save_pretrained(str(model_dir))
    return {"lora": True, "trainable_parameters": int(trainable), "total_parameters": int(total)}
