"""SmolLM2-135M-Instruct through the whole causal-LM flow: `train.base_model: smollm2-135m`
resolved from the model cache, a short LoRA SFT on a few BANKING77 instructions, and the
registered model answering through `mlflow.pyfunc` exactly as the evaluate step generated,
with SmolLM2's own chat template (from the GGUF) everywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from flows.finetune import finetune
from tasks.core.layout import RunLayout
from tasks.models.gguf import CACHE_ENV
from tasks.task_types.causal_lm.templating import DEFAULT_CHAT_TEMPLATE, load_chat_tokenizer
from tests.integration.conftest import SMOLLM2, Converted, banking_sample, tiny_params

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~4 CPU-min with the conversion (16 min at load 20)


def smollm2_params(root: Path) -> Path:
    """A causal-LM run on 32 BANKING77 instructions (4 intents): LoRA on all linear layers, 6 steps."""
    csv = root / "sample.csv"
    banking_sample(per_class=8).to_csv(csv, index=False)
    return tiny_params(
        root,
        Path(SMOLLM2),
        csv,
        task="causal_lm",
        data={"test_fraction": 0.25},
        sft={"from_classification": True},
        train={
            "max_steps": 6, "batch_size": 8, "learning_rate": 2e-3, "logging_steps": 2, "precision": "fp32",
            "eval_strategy": "steps", "eval_steps": 6,  # one validation pass, at the end
            "lora": {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        },
        evaluate={"batch_size": 8, "max_new_tokens": 12},
        gate={"thresholds": {"exact_match": 0.0, "rouge_l": 0.0}, "maximums": {"perplexity": 1e9}},
        register={"model_name": "smollm2-sft"},
    )  # fmt: skip


@pytest.mark.usefixtures("prefect_api", "mlflow_isolated")
def test_smollm2_lora_sft_learns_and_answers_through_mlflow_pyfunc(
    tmp_path: Path, smollm2: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(smollm2.directory.parent))  # the session's conversion, by name
    result = finetune(params_path=str(smollm2_params(tmp_path)), workdir=str(tmp_path / "run"))
    layout = RunLayout(tmp_path / "run")
    assert result["gate"]["passed"] is True

    losses = pd.read_csv(layout.train_history)["train_loss"].dropna().tolist()  # one row per logged step
    assert len(losses) >= 3 and losses[-1] < 0.7 * losses[0], losses

    # SmolLM2's ChatML template, from the GGUF metadata, is the one saved with the trained model
    template = (smollm2.directory / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template and template != DEFAULT_CHAT_TEMPLATE
    assert load_chat_tokenizer(layout.model_dir).chat_template == template

    metrics = json.loads(layout.eval_metrics.read_text())
    assert {"exact_match", "not_a_label", "n_not_a_label"} <= set(metrics)
    table = pd.read_csv(layout.generations_csv, keep_default_na=False, dtype={"output": str})
    assert len(table) == metrics["n_generated"] == 8

    # the registered (merged) model answers through pyfunc exactly as the evaluate step generated
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/smollm2-sft@challenger")
    answers = model.predict(table["prompt"].tolist())
    assert [str(a).strip() for a in answers] == table["output"].tolist()
    stored = mlflow.models.get_model_info("models:/smollm2-sft@challenger").metadata or {}
    assert stored["prompt_template"].startswith("<|im_start|>system\n")  # SmolLM2's template around {prompt}


def test_the_gpu_harness_trains_the_prepared_runs_without_banking77_there(
    tmp_path: Path, smollm2: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmarks/sft_gpu.py's two halves on one machine: `prepare` (sample, validate, tokenize), then
    the measuring loop with Refinery's train step alone, as on a GPU machine that has neither Great
    Expectations nor BANKING77 (the sampling would fail there), against the plain TRL script."""
    from benchmarks import sft_bench

    monkeypatch.setenv(CACHE_ENV, str(smollm2.directory.parent))
    setup = sft_bench.SftSetup(48, 8, ("padded",), 1, 8, "fp32")  # 43 train rows: 3 steps of 16
    sft_bench.prepare_train_steps(tmp_path, setup)
    assert (tmp_path / "refinery-padded-0" / "tokenized").is_dir()

    def no_sampling(*_: object) -> None:
        raise AssertionError("the measuring half sampled BANKING77 again")

    monkeypatch.setattr(sft_bench, "sample_data", no_sampling)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = sft_bench.run_sft_workload(tmp_path, setup, env, {"fp32": 1e11}, train_step_only=True)

    assert result["precision"] == "fp32" and result["train_examples"] == 43
    median = result["modes"]["padded"]["median"]
    assert median["refinery"]["steps"] == median["plain"]["steps"] == 3
    assert median["refinery"]["train_tokens"] > 0 and median["plain"]["train_tokens"] > 0
    assert not (tmp_path / "refinery-padded-0").exists()  # measured, then removed
    assert "padded: tokens_per_s" in sft_bench.sft_table(result)
