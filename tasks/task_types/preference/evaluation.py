"""Scoring a preference-tuned model on the held-out pairs, and greedy generations for a sample.

The policy is the trained model; the reference is the base model: with LoRA, the same model with
its adapters disabled, else the base model loaded beside it. Each test pair's log-probs under
both go to `eval/preferences.csv` (the champion comparison reuses the reference's); the metrics
are preference accuracy, mean reward margin and the mean chosen / rejected log-probs. Greedy
answers to a seeded sample of prompts (`evaluate.max_generation_examples`) go to
`eval/generations.csv`, with the SFT task type's generation code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.models.base_models import base_model_dir
from tasks.models.lora import ADAPTER_DIR
from tasks.task_types.causal_lm.generation import generate_answers, generation_rows, load_causal_lm
from tasks.task_types.causal_lm.templating import load_chat_tokenizer
from tasks.task_types.preference.scoring import answer_logps, pair_scores, preference_metrics
from tasks.tokenization.cache import load_tokenized

LOGP_COLUMNS = ["policy_chosen", "policy_rejected", "reference_chosen", "reference_rejected"]


def preferences_csv(layout: RunLayout) -> Path:
    """Per test pair: log-probs under policy and reference, reward margin, ranked right or not."""
    return layout.eval_dir / "preferences.csv"


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def policy_and_reference_logps(
    params: Params, layout: RunLayout, pairs: Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """(pairs × 2) chosen / rejected log-probs under the trained policy and under the reference."""
    pad, size = int(load_chat_tokenizer(layout.model_dir).pad_token_id), params.evaluate.batch_size
    adapter = layout.model_dir / ADAPTER_DIR
    base_dir = base_model_dir(params, layout)  # the reference: the run's (pinned) base model
    if (adapter / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(str(base_dir))
        policy = PeftModel.from_pretrained(base, str(adapter)).to(_device())
        mine = answer_logps(policy, pairs, pad, size)  # type: ignore[arg-type]
        with policy.disable_adapter():
            return mine, answer_logps(policy, pairs, pad, size)  # type: ignore[arg-type]
    mine = answer_logps(load_causal_lm(layout.model_dir), pairs, pad, size)
    reference = AutoModelForCausalLM.from_pretrained(str(base_dir)).to(_device())  # type: ignore[arg-type]
    return mine, answer_logps(reference, pairs, pad, size)


def score_pairs(params: Params, layout: RunLayout) -> pd.DataFrame:
    """Every test pair's log-probs under the policy and the reference, its margin and verdict."""
    pairs = load_tokenized(layout)["test"]
    if len(pairs) == 0:
        raise RefineryError("evaluate: the test split has no pairs; nothing to score")
    mine, theirs = policy_and_reference_logps(params, layout, pairs)
    scores = pair_scores(mine, theirs, params.preference.beta)
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    table = pd.DataFrame(np.concatenate([mine, theirs], axis=1), columns=LOGP_COLUMNS)
    table["reward_margin"] = scores.margin
    table["right"] = scores.right.astype(bool)
    for column in ("prompt", "chosen", "rejected", "source_file", "source_row"):
        table[column] = test[column].to_numpy()
    return table


def evaluate_run(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the test pairs, generate for a sample of prompts; write both tables; the metrics."""
    table = score_pairs(params, layout)
    logps = table[LOGP_COLUMNS].to_numpy()
    metrics = preference_metrics(logps[:, :2], logps[:, 2:], params.preference.beta)
    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(preferences_csv(layout), index=False)
    model, tokenizer = load_causal_lm(layout.model_dir), load_chat_tokenizer(layout.model_dir)
    rows = generation_rows(pd.read_parquet(layout.splits_dir / "test.parquet"), params.evaluate)
    outputs = generate_answers(model, tokenizer, rows, params.evaluate)
    pd.DataFrame(
        {
            "prompt": rows["prompt"].to_numpy(),
            "reference": rows["chosen"].to_numpy(),
            "rejected": rows["rejected"].to_numpy(),
            "output": outputs,
            "source_file": rows["source_file"].to_numpy(),
            "source_row": rows["source_row"].to_numpy(),
        }
    ).to_csv(layout.generations_csv, index=False)
    return {**metrics, "n_generated": len(rows)}
