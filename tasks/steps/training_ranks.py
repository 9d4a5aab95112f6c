"""The ranks of a launched training: what each torchrun process and each Ray Train worker runs.

The train step writes the run's effective params beside the checkpoint folder and launches this
module under torchrun (`python -m tasks.steps.training_ranks`) or `train_loop` on Ray Train. Every
rank trains its share of each batch through the task type's own training; only rank 0 writes the
model, the history and the summary metrics. Nothing here logs to MLflow: the register step does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from tasks.core.config import Params
from tasks.core.files import read_json
from tasks.core.layout import RunLayout
from tasks.data.splitting import read_splits
from tasks.models.base_models import base_model_dir
from tasks.task_types import load_task_params, task_type_for
from tasks.tokenization.cache import load_tokenized
from tasks.training.checkpoints import clear_finished, write_history
from tasks.training.launchers import ERRORS_DIR_ENV, recorded_failure, run_torchrun
from tasks.training.ray_cluster import run_on_ray

RANK_MODULE = "tasks.steps.training_ranks"  # torchrun's `-m`: this module


def train_rank(params_path: str, workdir: str, output_dir: str) -> None:
    """One rank: train with checkpoints in `output_dir`; rank 0 saves the model, history and metrics."""
    params = load_task_params(params_path)
    layout = RunLayout(Path(workdir))
    task_type = task_type_for(params)
    model_dir = base_model_dir(params, layout)
    labels, tokenized = read_splits(layout).labels, load_tokenized(layout, in_memory=True)
    trainer, summary = task_type.train(tokenized, model_dir, labels, params, Path(output_dir))
    with whole_model(trainer):  # every rank: FSDP gathers its shards for rank 0
        if trainer.is_world_process_zero():
            summary.update(task_type.save_model(trainer, model_dir, layout))
            summary["checkpoint_key"] = Path(output_dir).name  # a registered version's: kept by `refinery gc`
            write_history(trainer, summary, layout)


@contextlib.contextmanager
def whole_model(trainer: Any) -> Iterator[None]:
    """Within the block, `trainer.model` on rank 0 is the plain trained model with all its weights.

    Under FSDP `trainer.model` is the sharded wrapper: saving through it would write the shards (or,
    for a PEFT model, the adapter alone, as a plain model). Every rank enters FSDP's
    `summon_full_params` (a collective); rank 0 gets the full weights on the unwrapped model (a copy
    on the CPU, not written back), which the task type's `save_model` saves as with one process.
    """
    if not getattr(trainer, "is_fsdp_enabled", False):
        yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    wrapped = trainer.model
    # the full weights gathered on the CPU, so that a model larger than one GPU's share still fits;
    # with one process FSDP runs unsharded (NO_SHARD), where torch refuses offload_to_cpu
    sharded = torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1
    with FullyShardedDataParallel.summon_full_params(
        wrapped, writeback=False, rank0_only=True, offload_to_cpu=torch.cuda.is_available() and sharded
    ):
        trainer.model = trainer.accelerator.unwrap_model(wrapped)
        try:
            yield
        finally:
            trainer.model = wrapped


def train_loop(config: dict[str, Any]) -> None:
    """A Ray Train worker's loop: `train_rank`, its error recorded for the driver."""
    with recorded_failure(config["errors_dir"]):
        train_rank(config["params_path"], config["workdir"], config["output_dir"])


def train_launched(params: Params, layout: RunLayout, output_dir: Path) -> dict[str, Any]:
    """Train on `train.distributed`'s ranks (torchrun or Ray); the summary rank 0 wrote."""
    cfg = params.train.distributed
    clear_finished(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    params_path = output_dir.with_name(f"{output_dir.name}.params.yaml")  # the effective params
    params_path.write_text(yaml.safe_dump(params.as_dict(), sort_keys=False), encoding="utf-8")
    errors_dir = output_dir.with_name(f"{output_dir.name}.errors")
    paths = {"params_path": str(params_path), "workdir": str(layout.root), "output_dir": str(output_dir)}
    if cfg.launcher == "torchrun":
        args = [f"--{name.replace('_', '-')}={value}" for name, value in paths.items()]
        run_torchrun(RANK_MODULE, args, cfg, errors_dir, output_dir.name)
    else:
        storage = output_dir.with_name(f"{output_dir.name}.ray")
        run_on_ray(train_loop, {**paths, "errors_dir": str(errors_dir)}, cfg, storage, errors_dir)
    return read_json(layout.train_metrics)


def main(argv: list[str] | None = None) -> None:
    """torchrun's entry: one rank of `train_rank`, its error recorded for the launching step."""
    parser = argparse.ArgumentParser(description=train_rank.__doc__)
    for name in ("--params-path", "--workdir", "--output-dir"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    with recorded_failure(os.environ.get(ERRORS_DIR_ENV)):
        train_rank(args.params_path, args.workdir, args.output_dir)


if __name__ == "__main__":
    main()
