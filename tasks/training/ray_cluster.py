"""Ray Train: the same rank function on `TorchTrainer` workers, on a local Ray or a cluster.

`train.distributed.ray_address` null starts a Ray for the run on 127.0.0.1 (no dashboard, as many
logical CPUs as the workers ask for plus one) and stops it after; "auto" or "ray://host:10001"
joins a running cluster (`RAY=1 make up`, or KubeRay: infra/kubernetes/). Ray Train sets up the
process group (gloo on CPU, NCCL with GPUs) and the Trainer runs in it as under torchrun.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.config import DistributedConfig
from tasks.training.launchers import log, rank_failure

if TYPE_CHECKING:  # the Trainer is imported where training happens: a cached re-run never pays for it
    from transformers import Trainer

LOCAL_HOST = "127.0.0.1"


def worker_resources(cfg: DistributedConfig) -> dict[str, float]:
    """`resources_per_worker` without zero amounts (Ray refuses a GPU of 0 without `use_gpu`)."""
    return {name: amount for name, amount in cfg.resources_per_worker.items() if amount > 0}


def _start_ray(cfg: DistributedConfig) -> bool:
    """Connect to `ray_address`, or start a local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if cfg.ray_address is not None:
        ray.init(address=cfg.ray_address, log_to_driver=True)
        return True
    cpus = worker_resources(cfg).get("CPU", 1.0) * cfg.processes + 1  # + Ray Train's controller
    repo = str(Path(__file__).resolve().parents[2])  # workers import `tasks` as the driver does
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        address="local",  # a Ray of its own, even where `RAY=1 make up` runs one (`ray_address: auto`)
        num_cpus=int(cpus + 0.999),
        num_gpus=int(worker_resources(cfg).get("GPU", 0) * cfg.processes + 0.999),
        include_dashboard=False,
        _node_ip_address=LOCAL_HOST,
        runtime_env={"env_vars": {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}},
    )
    return True


def run_on_ray(
    train_loop: Callable[[dict[str, Any]], None],
    config: dict[str, Any],
    cfg: DistributedConfig,
    storage: Path,
    errors_dir: Path,
) -> None:
    """`train_loop(config)` on `cfg.processes` Ray Train workers; raise the failing worker's error."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = worker_resources(cfg)
    shutil.rmtree(errors_dir, ignore_errors=True)
    errors_dir.mkdir(parents=True)
    started = _start_ray(cfg)
    log.info("Ray Train: %d workers, %s each", cfg.processes, resources)
    try:
        trainer = TorchTrainer(
            train_loop,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=cfg.processes, use_gpu=resources.get("GPU", 0) > 0, resources_per_worker=resources
            ),
            run_config=RunConfig(name=storage.name, storage_path=str(storage.parent)),
        )
        trainer.fit()
    except Exception as err:
        if type(err).__module__.startswith("ray."):
            lines = [line for line in str(err).splitlines() if line.strip()]
            raise rank_failure(errors_dir, lines[-1] if lines else type(err).__name__) from None
        raise
    finally:
        if started:
            import ray

            ray.shutdown()


def prepare_ray_trainer(trainer: Trainer) -> None:
    """Inside a Ray Train worker: Ray's Trainer preparation and its report callback (checkpoints)."""
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    trainer.add_callback(RayTrainReportCallback())
    prepare_trainer(trainer)
