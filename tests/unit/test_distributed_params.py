"""`train.distributed`: one-line errors naming the key, the batch split across ranks, the Trainer's
options per strategy, the command torchrun runs, and what the checkpoint key depends on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tasks.core.config import DistributedConfig, TrainConfig, parse_params
from tasks.core.errors import ConfigError
from tasks.training.arguments import argument_values, distributed_values
from tasks.training.checkpoints import checkpoint_key
from tasks.training.launchers import torchrun_command
from tests.fixtures import build_tiny_classifier


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny"), ["x", "y"])


def _train(**distributed: object) -> dict[str, object]:
    return {"train": {"distributed": distributed}}


@pytest.mark.parametrize(
    ("distributed", "message"),
    [
        ({"processes": 2}, "train.distributed.processes and nodes above 1 need train.distributed.launcher"),
        ({"launcher": "ray", "nodes": 2}, "train.distributed.nodes is torchrun's"),
        ({"launcher": "torchrun", "nodes": 2}, "train.distributed.rdzv_endpoint (host:port) is required"),
        ({"strategy": "deepspeed"}, "train.distributed.deepspeed_config is set exactly when"),
        ({"ray_address": "auto"}, "train.distributed.ray_address is only used when"),
        ({"launcher": "ray", "resources_per_worker": {"CPU": -1}}, "resources_per_worker.CPU must be >= 0"),
        ({"launcher": "mpi"}, "'train.distributed.launcher' input should be 'none', 'torchrun' or 'ray'"),
        ({"threads": 2}, "unknown key 'train.distributed.threads'"),
    ],
)
def test_a_wrong_distributed_setting_is_one_line_naming_the_key(
    distributed: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_params(_train(**distributed), "params.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("params.yaml: ")


def test_the_global_batch_is_split_evenly_across_ranks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.batch_size \(32\) must be a multiple of .* \(3\)"):
        parse_params({"train": {"batch_size": 32, "distributed": {"launcher": "torchrun", "processes": 3}}})
    two = TrainConfig(batch_size=32, distributed=DistributedConfig(launcher="torchrun", processes=2))
    values = argument_values(two, tmp_path)
    assert values["per_device_train_batch_size"] == 16 and values["ddp_backend"] == "gloo"
    assert values["ddp_timeout"] == 600  # a hung collective fails the step in minutes, not half an hour
    assert argument_values(TrainConfig(batch_size=32), tmp_path)["per_device_train_batch_size"] == 32


def test_deepspeed_is_refused_without_cuda_and_fsdp_uses_the_trainers_options() -> None:
    deepspeed = DistributedConfig(launcher="torchrun", strategy="deepspeed", deepspeed_config="ds.json")
    with pytest.raises(ConfigError, match="^train.distributed.strategy: deepspeed needs CUDA GPUs"):
        distributed_values(deepspeed, cuda=False)
    assert distributed_values(deepspeed, cuda=True)["deepspeed"] == "ds.json"  # CUDA path: unverified
    fsdp = distributed_values(DistributedConfig(launcher="torchrun", processes=2, strategy="fsdp"), cuda=True)
    assert fsdp["fsdp"] == "full_shard auto_wrap" and fsdp["ddp_backend"] == "nccl"
    assert fsdp["fsdp_config"]["use_orig_params"] is True  # LoRA: frozen and trained params in one unit


def test_torchrun_runs_one_node_standalone_and_several_at_a_rendezvous() -> None:
    one = torchrun_command("m", ["--a=1"], DistributedConfig(launcher="torchrun", processes=2), "key")
    assert one[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in one and "--standalone" in one and one[-3:] == ["-m", "m", "--a=1"]
    nodes = DistributedConfig(launcher="torchrun", processes=4, nodes=2, rdzv_endpoint="head:29400")
    several = torchrun_command("m", [], nodes, "key")
    assert {"--nnodes=2", "--rdzv-endpoint=head:29400", "--rdzv-id=key"} <= set(several)


def test_the_checkpoint_key_has_the_world_size_not_the_launcher(tiny_model_dir: Path) -> None:
    def key(**distributed: object) -> str:
        cfg = TrainConfig(batch_size=4, distributed=DistributedConfig(**distributed))  # type: ignore[arg-type]
        return checkpoint_key("tokens", cfg, tiny_model_dir, "code")

    torchrun = key(launcher="torchrun", processes=2)
    assert torchrun == key(launcher="ray", processes=2, resources_per_worker={"CPU": 2})
    assert key() == key(launcher="torchrun") != torchrun  # one rank: the same weights as no launcher
    assert torchrun != key(launcher="torchrun", processes=2, strategy="fsdp")
