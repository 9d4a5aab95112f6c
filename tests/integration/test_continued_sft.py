"""Continued fine-tuning of a causal LM: an SFT run from `models:/tiny-sft@champion` starts from the
champion's merged weights, and a version registered as an adapter is merged into its base on the way in;
DPO from the SFT champion (the README's recipe) validates, trains and scores against that base."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from flows.finetune import finetune
from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tasks.cli.main import main
from tasks.core.config import load_params
from tasks.core.layout import RunLayout
from tasks.models.base_models import base_model_dir
from tasks.steps import registration
from tests.integration.conftest import SAMPLE_CLASSES, banking_sample
from tests.integration.preference import dpo_params, preference_pairs
from tests.integration.test_sft_pipeline import sft_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]

PARAMETER = "model.layers.0.self_attn.q_proj.weight"


def test_sft_from_the_sft_champion_merged_or_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample: pd.DataFrame = banking_sample(per_class=12)
    tiny_lm = build_tiny_causal_lm(tmp_path / "tiny-lm", [*sample["text"], *SAMPLE_CLASSES])
    first = sft_params(tmp_path, tiny_lm, sample, register={"promotion": "auto"})
    finetune(params_path=str(first), workdir=str(tmp_path / "v1"))
    adapter_params = load_params(first, {"register.causal_lm_format": "adapter"})
    assert registration.register_step(adapter_params, RunLayout(tmp_path / "v1")).version == "2"
    sft_v1 = load_file(str(tmp_path / "v1" / "model" / "model.safetensors"))[PARAMETER]  # LoRA merged

    second = sft_params(
        tmp_path,
        Path("models:/tiny-sft@champion"),
        sample,
        register={"model_name": "tiny-sft-continued"},
        train={"max_steps": 2, "lora": {"enabled": True}},
    )
    result = finetune(params_path=str(second), workdir=str(tmp_path / "continued"))
    assert result["registration"]["version"] == "1"
    params = load_params(second)
    started = base_model_dir(params, RunLayout(tmp_path / "continued"))
    assert torch.equal(load_file(str(started / "model.safetensors"))[PARAMETER], sft_v1)
    assert not torch.equal(load_file(str(tiny_lm / "model.safetensors"))[PARAMETER], sft_v1)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = client.get_model_version("tiny-sft-continued", "1").tags
    assert tags["base_model_version"] == "tiny-sft/1" and tags["base_model"] == "models:/tiny-sft@champion"

    assert main(["explain", "tiny-sft-continued/1", "--tracking-uri", client.tracking_uri]) == 0
    chain = f"Chain: tiny-sft-continued/1 <- started from tiny-sft/1 <- base model {tiny_lm}"
    assert chain in capsys.readouterr().out.splitlines()

    from_adapter = load_params(second, {"train.base_model": "models:/tiny-sft/2"})
    merged = base_model_dir(from_adapter)  # the adapter version, merged into its base on download
    assert torch.allclose(load_file(str(merged / "model.safetensors"))[PARAMETER], sft_v1, atol=1e-6)

    # the recipe: DPO from the SFT champion; its reference model is the champion's weights
    pairs = preference_pairs(sample)
    store = {"tracking_uri": client.tracking_uri}  # the SFT champion's store
    dpo = dpo_params(
        tmp_path / "dpo", Path("models:/tiny-sft@champion"), pairs, train={"max_steps": 2}, register=store
    )
    result = finetune(params_path=str(dpo), workdir=str(tmp_path / "dpo-run"))
    assert result["registration"]["version"] == "1"
    reference = base_model_dir(load_params(dpo), RunLayout(tmp_path / "dpo-run"))
    assert torch.equal(load_file(str(reference / "model.safetensors"))[PARAMETER], sft_v1)
    tags = client.get_model_version("tiny-dpo", "1").tags
    assert tags["base_model_version"] == "tiny-sft/1"
