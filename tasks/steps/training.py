"""The train step: fine-tune the base model on the tokenized splits, or reuse a finished training.

Checkpoints live under `train.checkpoint_dir/<key>` (see `tasks.training.checkpoints`): an
interrupted run resumes from its last checkpoint, and a finished one with the same key is reused.
One training per key at a time (a file lock beside the folder): a second run with the same inputs
waits, then reuses what the first one finished. `train.distributed.launcher` torchrun or ray trains
on several ranks (`tasks.steps.training_ranks`); resume, reuse and the key work the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filelock import FileLock

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.data.splitting import read_splits
from tasks.models.base_models import base_model_dir
from tasks.task_types import task_type_for
from tasks.tokenization.cache import load_tokenized, tokenized_meta
from tasks.training.checkpoints import checkpoint_key, keep_trained, reuse_trained, write_history
from tasks.training.plots import plot_training_curve


def checkpoint_dir(params: Params, layout: RunLayout) -> Path:
    """Where this run's training keeps its checkpoints: the key of its data, params, code and model."""
    task_type = task_type_for(params)
    model_dir = base_model_dir(params, layout)
    key = checkpoint_key(
        tokenized_meta(layout)["cache_key"], params.train, model_dir, task_type.training_code()
    )
    return Path(params.train.checkpoint_dir) / key


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Train on the tokenized splits; save model + tokenizer, history and summary metrics."""
    task_type = task_type_for(params)
    model_dir = base_model_dir(params, layout)
    output_dir = checkpoint_dir(params, layout)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(output_dir.with_name(f"{output_dir.name}.lock"))):
        reused = reuse_trained(output_dir, layout, params.train)
        if reused is None:
            if params.train.distributed.launcher != "none":  # torchrun's or Ray's ranks; rank 0 writes
                from tasks.steps.training_ranks import train_launched  # torch: only when training

                summary = train_launched(params, layout, output_dir)
            else:
                labels, tokenized = read_splits(layout).labels, load_tokenized(layout, in_memory=True)
                trainer, summary = task_type.train(tokenized, model_dir, labels, params, output_dir)
                summary.update(task_type.save_model(trainer, model_dir, layout))
                summary["checkpoint_key"] = output_dir.name  # a registered version's: kept by `refinery gc`
                write_history(trainer, summary, layout)
            plot_training_curve(layout.train_history, layout.training_curve_png)  # before keep_trained
            keep_trained(output_dir, layout)
        elif not layout.training_curve_png.is_file():  # a training kept before its curve was
            plot_training_curve(layout.train_history, layout.training_curve_png)
    return reused if reused is not None else {**summary, "checkpoint_dir": str(output_dir)}


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
