"""Causal-LM fine-tuning end to end on a tiny Llama: LoRA training, merge, the Prefect flow with
registration (merged and adapter), and `dvc repro`, with `task: causal_lm` (then, in the same
repository copy, `dvc repro` with `task: preference`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from mlflow import MlflowClient
from peft import PeftModel
from transformers import AutoModelForCausalLM

from flows.finetune import finetune
from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tasks.core.config import TrainConfig, load_params
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateFailed
from tasks.models.lora import ADAPTER_DIR, save_trained
from tasks.steps import comparison, registration
from tasks.task_types.causal_lm.templating import encode_example, load_chat_tokenizer
from tasks.task_types.causal_lm.training import train_causal_lm
from tasks.training.checkpoints import history_frame
from tests.integration.conftest import SAMPLE_CLASSES, banking_sample, tiny_params
from tests.integration.preference import dpo_params, preference_pairs
from tests.integration.repository import STAGES, copy_repository, dvc, stages_ran

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return banking_sample(per_class=12)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory, sample: pd.DataFrame) -> Path:
    texts = [*sample["text"], *SAMPLE_CLASSES]
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), texts)


def sft_params(root: Path, model: Path, sample: pd.DataFrame, **sections: dict[str, Any]) -> Path:
    """`tiny_params` turned into a causal-LM run: instructions from the labelled sample, LoRA."""
    csv = root / "sample.csv"
    sample.to_csv(csv, index=False)
    defaults: dict[str, dict[str, Any]] = {
        "validate": {"min_examples_per_class": 5},
        "sft": {"from_classification": True},
        "train": {"max_steps": 6, "batch_size": 8, "learning_rate": 1e-2, "lora": {"enabled": True}},
        "evaluate": {"batch_size": 16, "max_new_tokens": 4},
        "gate": {"thresholds": {"exact_match": 0.0, "rouge_l": 0.0}, "maximums": {"perplexity": 1e9}},
        "register": {"model_name": "tiny-sft"},
    }
    for section, values in sections.items():
        defaults.setdefault(section, {}).update(values)
    return tiny_params(root, model, csv, task="causal_lm", **defaults)


def test_lora_loss_falls_and_the_merged_model_generates(tmp_path: Path, tiny_lm: Path) -> None:
    tokenizer = load_chat_tokenizer(tiny_lm)
    pairs = [("when will my card arrive", "card_arrival"), ("what is the exchange rate", "exchange_rate")]
    encoded = [
        encode_example(tokenizer, [{"role": "user", "content": q}, {"role": "assistant", "content": a}], None)
        for q, a in pairs * 4
    ]
    rows = {"input_ids": [e.input_ids for e in encoded], "labels": [e.labels for e in encoded]}
    rows["attention_mask"] = [[1] * len(ids) for ids in rows["input_ids"]]

    data = DatasetDict({"train": Dataset.from_dict(rows), "validation": Dataset.from_dict(rows)})
    cfg = TrainConfig(
        base_model=str(tiny_lm), learning_rate=2e-2, batch_size=8, max_steps=16, logging_steps=4,
        early_stopping_patience=None, metric_for_best_model="loss", progress_bars=False,
        lora={"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0},
        # the trained model's forward keeps the Trainer's autocast: fp32 compares it with the merge exactly
        precision="fp32",
    )  # fmt: skip
    trainer, _ = train_causal_lm(data, tokenizer, tiny_lm, cfg, tmp_path / "ckpt")
    losses = history_frame(trainer.state.log_history)["train_loss"].dropna().tolist()
    assert len(losses) >= 3 and losses[-1] < losses[0] - 0.3, losses  # falls on a fixed tiny set

    assert isinstance(trainer.model, PeftModel)
    batch = torch.tensor([encoded[0].input_ids])
    with torch.inference_mode():
        adapted = trainer.model(input_ids=batch).logits
    facts = save_trained(trainer.model, tmp_path / "model", tiny_lm)
    assert facts["lora"] is True and 0 < facts["trainable_parameters"] < facts["total_parameters"]
    assert (tmp_path / "model" / ADAPTER_DIR / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "model")).eval()
    with torch.inference_mode():
        assert torch.allclose(merged(input_ids=batch).logits, adapted, atol=1e-4)
        out = merged.generate(batch[:, :-2], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape[1] > batch.shape[1] - 2


@pytest.mark.usefixtures("prefect_api", "mlflow_isolated")
def test_flow_registers_a_generating_model_merged_and_as_adapter(
    tmp_path: Path, tiny_lm: Path, sample: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    params_path = sft_params(tmp_path, tiny_lm, sample)
    result = finetune(params_path=str(params_path), workdir=str(tmp_path / "run"))
    layout = RunLayout(tmp_path / "run")
    metrics = json.loads(layout.eval_metrics.read_text())
    assert {"eval_loss", "perplexity", "exact_match", "rouge_l"} <= set(metrics)
    assert metrics["perplexity"] > 1.0 and result["gate"]["passed"] is True
    table = pd.read_csv(layout.generations_csv, keep_default_na=False)
    assert list(table.columns[:3]) == ["prompt", "reference", "output"] and len(table) == metrics["n_test"]
    assert table["reference"].isin(SAMPLE_CLASSES).all()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    version = client.get_model_version_by_alias("tiny-sft", "challenger")
    run_id = str(version.run_id)
    assert "eval/generations.csv" in [a.path for a in client.list_artifacts(run_id, "eval")]
    assert client.get_run(run_id).data.metrics["test_rouge_l"] == pytest.approx(metrics["rouge_l"])

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        keys = {a.key for a in prefect.read_latest_artifacts()}
    assert "finetune-generations" in keys

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    merged = mlflow.pyfunc.load_model("models:/tiny-sft@challenger").predict(
        ["lost my card", "exchange rate"]
    )
    assert len(merged) == 2 and all(isinstance(text, str) for text in merged)
    served = _served_answers(f"sqlite:///{tmp_path / 'mlflow.db'}", "models:/tiny-sft@challenger", tmp_path)
    assert served == list(merged)  # `mlflow models serve` answers as the pyfunc does

    # LoRA is initialised after the seed: retraining version 1 from its record gives identical metrics
    from tasks.cli.main import main

    code = main(
        ["reproduce", "tiny-sft", "--version", "1", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    reproduced = capsys.readouterr().out
    assert code == 0 and "Result: identical test metrics" in reproduced, reproduced
    assert "exact_match" in reproduced and "perplexity" in reproduced

    adapter_params = load_params(params_path, {"register.causal_lm_format": "adapter"})
    registered = registration.register_step(adapter_params, layout)
    assert registered.version == "2"
    adapter = mlflow.pyfunc.load_model("models:/tiny-sft@challenger")
    assert adapter.predict(["lost my card", "exchange rate"]) == merged  # same weights, same greedy answers

    # With a champion, the next run generates with it on the same prompts and must beat it. The same
    # training (reused) against its own registered weights: the same answers, a difference of exactly 0.
    client.set_registered_model_alias("tiny-sft", "champion", "1")
    with pytest.raises(GateFailed, match=r"vs champion v1: exact_match .* delta \+0\.0000"):
        finetune(params_path=str(params_path), workdir=str(tmp_path / "rerun"))
    again = RunLayout(tmp_path / "rerun")
    compared = json.loads(again.comparison_json.read_text())
    assert compared["champion_version"] == "1" and compared["group_metric"] == "exact_match"
    assert compared["bootstrap"]["challenger"] == pytest.approx(metrics["exact_match"])
    assert compared["bootstrap"]["low"] == compared["bootstrap"]["high"] == 0.0
    assert compared["mcnemar"]["champion_only"] == compared["mcnemar"]["challenger_only"] == 0
    text = {"output": str, "reference": str}
    theirs = pd.read_csv(again.champion_predictions_csv, keep_default_na=False, dtype=text)
    ours = pd.read_csv(again.generations_csv, keep_default_na=False, dtype=text)
    assert theirs["output"].tolist() == ours["output"].tolist()
    assert len(client.search_model_versions("name='tiny-sft'")) == 2  # refused: nothing registered

    # an adapter champion (base + LoRA, pyfunc) is loaded and generates the same answers
    client.set_registered_model_alias("tiny-sft", "champion", "2")
    compared_adapter = comparison.run_step(adapter_params, layout)
    assert compared_adapter["champion_version"] == "2"
    assert compared_adapter["bootstrap"]["delta"] == 0.0


def _served_answers(tracking_uri: str, model_uri: str, home: Path) -> list[str]:
    """Answers of `mlflow models serve` (its own process group on 127.0.0.1) to the two prompts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = home / "serve.log"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # its uvicorn
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    with log.open("w") as out:
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/invocations",
                    json={"inputs": ["lost my card", "exchange rate"]},
                    timeout=60,
                )
                assert response.status_code == 200, response.text
                return list(response.json()["predictions"])
            except httpx.TransportError:
                time.sleep(1.0)
        raise AssertionError(f"mlflow models serve did not answer:\n{log.read_text()[-3000:]}")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _in_repository(params_file: Path, train_path: str) -> None:
    """Point a params file written by the helpers at the repository copy: data, caches and store inside."""
    raw = yaml.safe_load(params_file.read_text())
    raw["data"]["train_path"] = train_path
    raw["tokenize"]["cache_dir"] = ".cache/refinery/tokenized"
    raw["train"]["checkpoint_dir"] = ".cache/refinery/checkpoints"
    raw["register"]["tracking_uri"] = "sqlite:///mlflow.db"
    params_file.write_text(yaml.safe_dump(raw))


def test_dvc_repro_runs_the_causal_lm_then_the_preference_pipeline(
    tmp_path: Path, tiny_lm: Path, sample: pd.DataFrame
) -> None:
    repo = copy_repository(tmp_path / "repo")
    _in_repository(sft_params(repo, tiny_lm, sample, train={"max_steps": 2}), "sample.csv")

    assert stages_ran(dvc(repo, "repro")) == STAGES
    assert (repo / "artifacts" / "eval" / "generations.csv").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("tiny-sft", "challenger").version) == "1"
    assert "rouge_l" in dvc(repo, "metrics", "show")

    # the same repository switched to `task: preference` (TRL's DPO on a few dozen pairs): every
    # stage again, a preference version with its own metrics, then nothing left to run
    _in_repository(dpo_params(repo, tiny_lm, preference_pairs(sample), train={"max_steps": 2}), "pairs.jsonl")
    assert stages_ran(dvc(repo, "repro")) == STAGES
    metrics = json.loads((repo / "artifacts" / "eval" / "metrics.json").read_text())
    assert {"preference_accuracy", "reward_margin", "logp_chosen", "logp_rejected"} <= set(metrics)
    version = client.get_model_version_by_alias("tiny-dpo", "challenger")
    recorded = client.get_run(str(version.run_id)).data
    assert str(version.version) == "1" and recorded.params["task"] == "preference"
    assert recorded.metrics["test_preference_accuracy"] == pytest.approx(metrics["preference_accuracy"])
    again = dvc(repo, "repro")
    assert stages_ran(again) == [] and "up to date" in again
