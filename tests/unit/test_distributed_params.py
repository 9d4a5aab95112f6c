"""`train.distributed`: one-line errors naming the key, the batch split across ranks, the Trainer's
options per strategy, the command torchrun runs, and what the checkpoint key depends on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tasks.core.config import DistributedConfig, TrainConfig, parse_params
from tasks.core.errors import ConfigError
from tasks.training.arguments import argument_values, deepspeed_stage, distributed_values
from tasks.training.checkpoints import checkpoint_key
from tasks.training.launchers import torchrun_command
from tests.conftest import REPO_ROOT
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


def test_deepspeed_and_fsdp_are_refused_without_cuda_and_use_the_trainers_options(tmp_path: Path) -> None:
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    deepspeed = DistributedConfig(launcher="torchrun", strategy="deepspeed", deepspeed_config=str(config))
    with pytest.raises(ConfigError, match="^train.distributed.strategy: deepspeed needs CUDA GPUs"):
        distributed_values(deepspeed, cuda=False)
    assert distributed_values(deepspeed, cuda=True)["deepspeed"] == str(config)
    fsdp_config = DistributedConfig(launcher="torchrun", processes=2, strategy="fsdp")
    with pytest.raises(
        ConfigError, match="^train.distributed.strategy: fsdp needs CUDA GPUs; use ddp on a CPU$"
    ):
        distributed_values(fsdp_config, cuda=False)
    fsdp = distributed_values(fsdp_config, cuda=True)
    assert fsdp["fsdp"] == "full_shard auto_wrap" and fsdp["ddp_backend"] == "nccl"
    # FSDP1 with the original parameters (LoRA: frozen and trained ones in one unit); FSDP2 failed on a GPU
    assert fsdp["fsdp_config"] == {"version": 1, "use_orig_params": True, "sync_module_states": True}


def test_deepspeed_config_must_be_readable_json_of_zero_stage_0_to_2(tmp_path: Path) -> None:
    missing = DistributedConfig(
        launcher="torchrun", strategy="deepspeed", deepspeed_config=str(tmp_path / "no.json")
    )
    with pytest.raises(
        ConfigError, match=r"^train.distributed.deepspeed_config: cannot read .*no.json as JSON"
    ):
        distributed_values(missing, cuda=True)
    stage3 = tmp_path / "zero3.json"
    stage3.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    three = DistributedConfig(launcher="torchrun", strategy="deepspeed", deepspeed_config=str(stage3))
    with pytest.raises(ConfigError, match="uses ZeRO stage 3; stages 0-2 are supported"):
        distributed_values(three, cuda=True)
    shipped = REPO_ROOT / "infra" / "deepspeed" / "zero2.json"
    assert deepspeed_stage(str(shipped)) == 2


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


def test_fsdp_with_lora_is_refused_when_the_params_load() -> None:
    """On a GPU, rank 0 could not save a LoRA model trained under FSDP (README, CUDA): refused up front."""
    raw = {"train": {"lora": {"enabled": True}, "distributed": {"launcher": "torchrun", "strategy": "fsdp"}}}
    with pytest.raises(ConfigError, match="train.distributed.strategy: fsdp cannot save a LoRA model") as err:
        parse_params(raw)
    assert "\n" not in str(err.value) and "use ddp" in str(err.value)
    ddp = {"launcher": "torchrun", "strategy": "ddp"}
    assert parse_params({"train": {"lora": {"enabled": True}, "distributed": ddp}}).train.lora.enabled
