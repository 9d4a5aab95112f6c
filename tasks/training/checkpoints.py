"""Checkpoints, resume and reuse: what every task type's training shares around `Trainer.train`.

Checkpoints live under `train.checkpoint_dir/<key>`, the key made from the tokenized data,
the training params, the base model's weights, the training code and library versions, so an
interrupted run with the same inputs resumes from its last checkpoint. A finished one leaves
its model there too (`trained/`), reused by a later run with the same key
(`train.reuse_trained`), as DVC's run-cache reuses a stage's outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.core.config import TrainConfig
from tasks.core.files import space_for
from tasks.core.hashing import code_version
from tasks.core.layout import RunLayout
from tasks.models.base_models import weights_fingerprint
from tasks.training.precision import decision_fingerprint

if TYPE_CHECKING:
    from transformers import Trainer

COMPLETE_MARKER = "TRAINING_COMPLETE"
TRAINED_DIR = "trained"  # a finished training's model, history and summary, for reuse
_SHARED_CODE = (
    Path(__file__).with_name("arguments.py"),
    Path(__file__),
    Path(__file__).with_name("resumption.py"),
    Path(__file__).with_name("precision.py"),
    Path(__file__).with_name("precision_modes.py"),
)


def checkpoint_key(tokenized_key: str, cfg: TrainConfig, model_dir: Path, task_code: str) -> str:
    """What makes two trainings the same: data, hyper-parameters, base weights, code and versions.

    `task_code` is the task type's training code version (its model, collator and loss).
    """
    digest = hashlib.sha256()
    digest.update(tokenized_key.encode())
    # change no weight: where the ranks run (launcher, rendezvous, cluster, resources) is not in the key;
    # how many there are is (processes x nodes: each rank draws its own dropout, reductions add in
    # another order), as is the strategy. torchrun and Ray with the same world size share a key.
    excluded: dict[str, Any] = {
        "progress_bars": True,
        "resume": True,
        "checkpoint_dir": True,
        "reuse_trained": True,
        "distributed": {"launcher", "rdzv_endpoint", "ray_address", "resources_per_worker"},
    }
    digest.update(cfg.model_dump_json(exclude=excluded).encode())  # train.precision: each variant its own
    if cfg.precision == "auto":  # what auto trains in follows the committed precision study
        digest.update(f"precision study {decision_fingerprint()}".encode())
    digest.update(f"{code_version(*_SHARED_CODE)} {task_code}".encode())
    digest.update(f"torch {version('torch')} transformers {version('transformers')}".encode())
    digest.update(str(model_dir.resolve()).encode())
    digest.update(weights_fingerprint(model_dir).encode())
    return digest.hexdigest()[:24]


def clear_finished(output_dir: Path) -> None:
    """A previous run with these inputs finished in `output_dir`: start afresh."""
    if (output_dir / COMPLETE_MARKER).exists():
        shutil.rmtree(output_dir)


def fit(trainer: Trainer, cfg: TrainConfig, output_dir: Path) -> dict[str, Any]:
    """Run `trainer`, resuming an interrupted run in `output_dir`; return the summary metrics."""
    # here, not at the top: a run that reuses a finished training never loads torch or transformers
    from tasks.training.arguments import hardware_description, resolved_precision
    from tasks.training.precision_modes import precision_applied
    from tasks.training.progress_log import ProgressLog
    from tasks.training.resumption import MarkSavedCheckpoints, usable_checkpoint

    if trainer.args.world_size == 1:  # ranks of a launched run: the launching step cleared the folder
        clear_finished(output_dir)
    last, skipped = usable_checkpoint(output_dir) if cfg.resume else (None, [])
    resume_from = str(last) if last is not None else None
    if skipped:
        fallback = f"resuming from {last.name}" if last is not None else "starting afresh"
        print(f"warning: {'; '.join(skipped)}; {fallback}", file=sys.stderr)
    if cfg.distributed.launcher == "ray":
        from tasks.training.ray_cluster import prepare_ray_trainer

        prepare_ray_trainer(trainer)
    trainer.add_callback(MarkSavedCheckpoints())
    trainer.add_callback(ProgressLog(cfg.metric_for_best_model))
    precision = resolved_precision(cfg)
    with (
        space_for(output_dir, "train.checkpoint_dir"),  # a cut checkpoint is skipped on resume
        precision_applied(precision, trainer.model),  # what the Trainer's bf16/fp16 flags do not set
    ):
        result = trainer.train(resume_from_checkpoint=resume_from)
    if trainer.is_world_process_zero():
        (output_dir / COMPLETE_MARKER).write_text("done\n", encoding="utf-8")
    summary: dict[str, Any] = {
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics.get("train_runtime", 0.0)),
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "global_steps": int(trainer.state.global_step),
        "epochs_completed": float(trainer.state.epoch or 0.0),
        "resumed": resume_from is not None,
        "resumed_from": last.name if last is not None else None,
        "checkpoints_skipped": len(skipped),
        "precision": precision,  # the variant trained in: `auto` resolved
        "hardware": hardware_description(),
        "world_size": int(trainer.args.world_size),
        "launcher": cfg.distributed.launcher,
        "strategy": cfg.distributed.strategy,
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


def keep_trained(output_dir: Path, layout: RunLayout) -> None:
    """Keep the finished model, history and summary beside its checkpoints, for `reuse_trained`."""
    staging = output_dir / f"{TRAINED_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with space_for(staging, "train.checkpoint_dir"):
            shutil.copytree(layout.model_dir, staging / "model")
            shutil.copy2(layout.train_history, staging / "history.csv")
            if layout.training_curve_png.is_file():
                shutil.copy2(layout.training_curve_png, staging / layout.training_curve_png.name)
            shutil.copy2(layout.train_metrics, staging / "metrics.json")  # written last: the entry is whole
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(output_dir / TRAINED_DIR, ignore_errors=True)
    staging.rename(output_dir / TRAINED_DIR)


def reuse_trained(output_dir: Path, layout: RunLayout, cfg: TrainConfig) -> dict[str, Any] | None:
    """A finished training with the same key, copied into the run (its summary says `reused`)."""
    kept = output_dir / TRAINED_DIR
    if not cfg.reuse_trained or not (kept / "metrics.json").is_file():
        return None
    os.utime(kept / "metrics.json")  # used now: `refinery gc` removes the least recently used first
    shutil.rmtree(layout.model_dir, ignore_errors=True)
    shutil.copytree(kept / "model", layout.model_dir)
    layout.train_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(kept / "history.csv", layout.train_history)
    layout.training_curve_png.unlink(missing_ok=True)
    if (kept / layout.training_curve_png.name).is_file():  # kept since the curve is kept too
        shutil.copy2(kept / layout.training_curve_png.name, layout.training_curve_png)
    summary = {**json.loads((kept / "metrics.json").read_text(encoding="utf-8")), "reused": True}
    layout.train_metrics.write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    return {**summary, "checkpoint_dir": str(output_dir)}


def write_history(trainer: Trainer, summary: dict[str, Any], layout: RunLayout) -> None:
    """The training history (a DVC plot) and the summary metrics (a DVC metric)."""
    layout.train_dir.mkdir(parents=True, exist_ok=True)
    history_frame(trainer.state.log_history).to_csv(layout.train_history, index=False)
    layout.train_metrics.write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
