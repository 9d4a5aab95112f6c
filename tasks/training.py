"""Fine-tuning a sequence classifier with the Hugging Face `Trainer`.

Checkpoints live under `train.checkpoint_dir/<key>`, the key made from the tokenized data,
the training params, the base model, the training code and library versions, so an
interrupted run with the same inputs resumes from its last checkpoint. A finished one leaves
its model there too (`trained/`), reused by a later run with the same key
(`train.reuse_trained`), as DVC's run-cache reuses a stage's outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import transformers
from datasets import DatasetDict
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint, set_seed

from tasks.base_models import fingerprint_files, resolve_base_model
from tasks.config import ConfigError, LoraSettings, Params, TrainConfig
from tasks.data import read_splits
from tasks.evaluation import classification_metrics
from tasks.layout import RunLayout
from tasks.lora import apply_lora, quantization_config, save_trained
from tasks.tokenization import META_FILE, code_version, load_tokenized, load_tokenizer

COMPLETE_MARKER = "TRAINING_COMPLETE"
TRAINED_DIR = "trained"  # a finished training's model, history and summary, for reuse

log = logging.getLogger(__name__)


def checkpoint_key(tokenized_key: str, cfg: TrainConfig, model_dir: Path) -> str:
    """What makes two trainings the same: data, hyper-parameters, base weights' identity."""
    digest = hashlib.sha256()
    digest.update(tokenized_key.encode())
    excluded = {"progress_bars", "resume", "checkpoint_dir", "reuse_trained"}  # change no weight
    digest.update(cfg.model_dump_json(exclude=excluded).encode())
    here = Path(__file__).parent
    digest.update(code_version(here / "training.py", here / "sft_training.py", here / "lora.py").encode())
    digest.update(f"torch {torch.__version__} transformers {transformers.__version__}".encode())
    digest.update(str(model_dir.resolve()).encode())
    digest.update(
        fingerprint_files(model_dir, ("config.json", "model.safetensors", "pytorch_model.bin")).encode()
    )
    return digest.hexdigest()[:24]


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


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """AVX512-BF16 or AMX: the CPU multiplies bf16 in hardware (elsewhere bf16 is emulated, slower)."""
    try:
        flags = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def training_precision(requested: str, cuda: bool, cuda_bf16: bool) -> str:
    """The precision training runs in for `train.precision` on this hardware (fp32, bf16 or fp16).

    `auto` is bf16 autocast on CUDA (fp16 on GPUs without bf16) and fp32 on a CPU: bf16 on the CPU
    is 1.7x faster here but cost 2.2 points of SST-2 test accuracy (README, Benchmarks), more
    than the 0.5 we allow a speed-up; set `bf16` to take that trade.
    """
    if requested == "auto":
        if cuda:
            return "bf16" if cuda_bf16 else "fp16"
        return "fp32"
    if requested == "fp16" and not cuda:
        raise ConfigError("train.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU")
    if requested == "bf16" and cuda and not cuda_bf16:
        raise ConfigError("train.precision: this CUDA GPU has no bf16; use fp16 or fp32")
    return requested


def resolved_precision(cfg: TrainConfig) -> str:
    """`training_precision` for the machine this runs on; warns when CPU bf16 would be emulated."""
    cuda = torch.cuda.is_available()
    precision = training_precision(cfg.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    if precision == "bf16" and not cuda and not cpu_has_native_bf16():
        log.warning("train.precision: bf16 on a CPU without AVX512-BF16/AMX is emulated: slower than fp32")
    return precision


def cuda_has_tf32() -> bool:
    """A CUDA GPU with TF32 tensor cores (compute capability 8.0 or newer)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def training_arguments(cfg: TrainConfig, output_dir: Path) -> TrainingArguments:
    """Map params onto `TrainingArguments`, in the precision `train.precision` resolves to here."""
    cuda = torch.cuda.is_available()
    precision = resolved_precision(cfg)
    best = None if cfg.early_stopping_patience is None else f"eval_{cfg.metric_for_best_model}"
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        seed=cfg.seed,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        eval_strategy=cfg.eval_strategy,
        save_strategy=cfg.eval_strategy,
        eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps if cfg.eval_steps is not None else 500,
        logging_steps=cfg.logging_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=best is not None,
        metric_for_best_model=best,
        greater_is_better=None if best is None else cfg.metric_for_best_model != "loss",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        tf32=True if cuda_has_tf32() else None,  # fp32 matmuls on tensor cores (Ampere and newer)
        torch_compile=cfg.torch_compile,
        use_cpu=not cuda,  # the Trainer accepts bf16 without a GPU only when told it runs on CPU
        dataloader_pin_memory=cuda,
        report_to="none",
        disable_tqdm=not cfg.progress_bars,
    )


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
    trainer = Trainer(
        model=load_base_model(model_dir, labels, cfg.lora),
        args=training_arguments(cfg, output_dir),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if len(tokenized["validation"]) else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=_compute_metrics(len(labels)),
        callbacks=[
            *([EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []),
            *(callbacks or []),
        ],
    )
    return trainer, fit(trainer, cfg, output_dir)


def fit(trainer: Trainer, cfg: TrainConfig, output_dir: Path) -> dict[str, Any]:
    """Run `trainer`, resuming an interrupted run in `output_dir`; return the summary metrics."""
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if last is not None and (output_dir / COMPLETE_MARKER).exists():
        shutil.rmtree(output_dir)  # the previous run with these inputs finished: start afresh
        last = None
    resume_from = last if cfg.resume else None
    result = trainer.train(resume_from_checkpoint=resume_from)
    (output_dir / COMPLETE_MARKER).write_text("done\n", encoding="utf-8")
    summary: dict[str, Any] = {
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics.get("train_runtime", 0.0)),
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "global_steps": int(trainer.state.global_step),
        "epochs_completed": float(trainer.state.epoch or 0.0),
        "resumed": resume_from is not None,
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
    }
    if trainer.state.best_metric is not None:
        summary[f"best_validation_{cfg.metric_for_best_model}"] = float(trainer.state.best_metric)
    return summary


def history_frame(log_history: list[dict[str, Any]]) -> pd.DataFrame:
    """Trainer logs as one row per logged step: train loss / learning rate and validation metrics."""
    rows = [entry for entry in log_history if "loss" in entry or "eval_loss" in entry]
    if not rows:
        return pd.DataFrame(columns=["step", "epoch"])
    frame = pd.DataFrame(rows).rename(columns={"loss": "train_loss"})
    keep = [c for c in frame.columns if c != "total_flos" and not c.endswith(("_runtime", "_per_second"))]
    return frame[keep].groupby("step", as_index=False).first()


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Train on the tokenized splits; save model + tokenizer, history and summary metrics."""
    if params.task == "causal_lm":
        from tasks import sft_training

        return sft_training.run_step(params, layout)
    model_dir = resolve_base_model(params.train.base_model)
    splits = read_splits(layout)
    tokenized = load_tokenized(layout)
    tokenized_key = json.loads((layout.tokenized_dir / META_FILE).read_text(encoding="utf-8"))["cache_key"]
    output_dir = Path(params.train.checkpoint_dir) / checkpoint_key(tokenized_key, params.train, model_dir)
    reused = reuse_trained(output_dir, layout, params.train)
    if reused is not None:
        return reused
    tokenizer = load_tokenizer(model_dir)
    trainer, summary = train_classifier(
        tokenized, tokenizer, model_dir, splits.labels, params.train, output_dir
    )
    summary.update(save_trained(trainer.model, layout.model_dir, model_dir))
    tokenizer.save_pretrained(str(layout.model_dir))
    write_history(trainer, summary, layout)
    keep_trained(output_dir, layout)
    return {**summary, "checkpoint_dir": str(output_dir)}


def keep_trained(output_dir: Path, layout: RunLayout) -> None:
    """Keep the finished model, history and summary beside its checkpoints, for `reuse_trained`."""
    staging = output_dir / f"{TRAINED_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(layout.model_dir, staging / "model")
    shutil.copy2(layout.train_history, staging / "history.csv")
    shutil.copy2(layout.train_metrics, staging / "metrics.json")  # written last: the entry is whole
    shutil.rmtree(output_dir / TRAINED_DIR, ignore_errors=True)
    staging.rename(output_dir / TRAINED_DIR)


def reuse_trained(output_dir: Path, layout: RunLayout, cfg: TrainConfig) -> dict[str, Any] | None:
    """A finished training with the same key, copied into the run (its summary says `reused`)."""
    kept = output_dir / TRAINED_DIR
    if not cfg.reuse_trained or not (kept / "metrics.json").is_file():
        return None
    shutil.rmtree(layout.model_dir, ignore_errors=True)
    shutil.copytree(kept / "model", layout.model_dir)
    layout.train_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(kept / "history.csv", layout.train_history)
    summary = {**json.loads((kept / "metrics.json").read_text(encoding="utf-8")), "reused": True}
    layout.train_metrics.write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    return {**summary, "checkpoint_dir": str(output_dir)}


def write_history(trainer: Trainer, summary: dict[str, Any], layout: RunLayout) -> None:
    """The training history (a DVC plot) and the summary metrics (a DVC metric)."""
    layout.train_dir.mkdir(parents=True, exist_ok=True)
    history_frame(trainer.state.log_history).to_csv(layout.train_history, index=False)
    layout.train_metrics.write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    from tasks.stage import stage_main

    stage_main(run_step)
