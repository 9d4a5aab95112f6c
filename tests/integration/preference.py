"""Preference pairs from the BANKING77 sample and a DPO params file for the tiny Llama: shared by
the flow, `dvc repro` and deployment-run tests of `task: preference`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tests.integration.conftest import tiny_params

REJECTED = "not sure"  # every pair prefers the intent to this non-answer: learnable in a few steps


def preference_pairs(sample: pd.DataFrame) -> pd.DataFrame:
    """One pair per labelled row: the prompt asks for the intent, `chosen` is it, `rejected` is not."""
    return pd.DataFrame(
        {
            "prompt": [f"Classify this customer message into a banking intent: {t}" for t in sample["text"]],
            "chosen": sample["category"],
            "rejected": REJECTED,
            "intent": sample["category"],
        }
    )


def dpo_params(root: Path, model: Path, pairs: pd.DataFrame, **sections: dict[str, Any]) -> Path:
    """`tiny_params` turned into a DPO run on the pairs (JSON Lines in `root`), with LoRA."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "pairs.jsonl"
    pairs.to_json(path, orient="records", lines=True)
    defaults: dict[str, dict[str, Any]] = {
        "data": {"train_path": str(path), "format": "jsonl", "test_fraction": 0.25},
        "validate": {"min_examples_per_class": 1},
        "preference": {"beta": 0.1},
        "train": {"max_steps": 12, "batch_size": 8, "learning_rate": 2e-2, "metric_for_best_model": "loss",
                  "lora": {"enabled": True, "dropout": 0.0}, "precision": "fp32"},
        "evaluate": {"batch_size": 16, "max_new_tokens": 3, "max_generation_examples": 6},
        "gate": {"thresholds": {"preference_accuracy": 0.0}},
        "register": {"model_name": "tiny-dpo"},
    }  # fmt: skip
    for section, values in sections.items():
        defaults.setdefault(section, {}).update(values)
    return tiny_params(root, model, path, task="preference", **defaults)
