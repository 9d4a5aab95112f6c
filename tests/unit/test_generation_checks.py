"""Causal-LM evaluation on classification data: the stratified generation sample and the
"not a label" count (answers outside the known label set)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from datasets import Dataset

from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tasks.core.config import EvaluateConfig, parse_params
from tasks.core.layout import RunLayout
from tasks.task_types.causal_lm.generation import (
    evaluate_causal_lm,
    known_labels,
    not_a_label,
)
from tasks.task_types.causal_lm.templating import encode_example, load_chat_tokenizer

CLASSES = ["card_arrival", "exchange_rate", "lost_card", "top_up"]


def grouped_test(per_class: int = 10) -> pd.DataFrame:
    """A test split grouped by class, as BANKING77's test file is."""
    labels = [label for label in CLASSES for _ in range(per_class)]
    messages = [
        [{"role": "user", "content": f"message {i}"}, {"role": "assistant", "content": label}]
        for i, label in enumerate(labels)
    ]
    return pd.DataFrame(
        {
            "messages": [json.dumps(m) for m in messages],
            "prompt": [m[0]["content"] for m in messages],
            "reference": labels,
            "label": labels,
            "source_file": "test.csv",
            "source_row": range(2, len(labels) + 2),
        }
    )


def test_not_a_label_compares_as_exact_match_does() -> None:
    outputs = ["card_arrival", " lost_card\n", "Card_arrival", "The intent is top_up.", ""]
    assert not_a_label(outputs, CLASSES) == [False, False, True, True, True]


def test_known_labels_are_the_splits_labels_for_classification_data(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    layout.splits_dir.mkdir(parents=True)
    for name, labels in {"train": CLASSES[:3], "validation": CLASSES[:1], "test": CLASSES[3:]}.items():
        pd.DataFrame({"label": labels}).to_parquet(layout.splits_dir / f"{name}.parquet")
    from_classification = parse_params({"task": "causal_lm", "sft": {"from_classification": True}})
    assert known_labels(layout, from_classification) == sorted(CLASSES)
    assert known_labels(layout, parse_params({"task": "causal_lm"})) is None  # free-form answers


@pytest.mark.parametrize("labels", [CLASSES, None])
def test_evaluation_counts_answers_that_are_not_a_label(tmp_path: Path, labels: list[str] | None) -> None:
    model_dir = build_tiny_causal_lm(tmp_path / "lm", [*CLASSES, "message", *map(str, range(40))])
    from transformers import AutoModelForCausalLM

    model, tokenizer = AutoModelForCausalLM.from_pretrained(str(model_dir)), load_chat_tokenizer(model_dir)
    test = grouped_test(per_class=3)
    encoded = [encode_example(tokenizer, json.loads(m), None) for m in test["messages"]]
    tokenized = Dataset.from_dict(
        {
            "input_ids": [e.input_ids for e in encoded],
            "attention_mask": [[1] * len(e.input_ids) for e in encoded],
            "labels": [e.labels for e in encoded],
        }
    )
    cfg = EvaluateConfig(batch_size=4, max_new_tokens=3, max_generation_examples=8)
    result = evaluate_causal_lm(model, tokenizer, test, tokenized, cfg, labels=labels)
    table, metrics = result.table, result.metrics
    assert metrics["n_generated"] == len(table) == 8
    if labels is None:
        assert "not_a_label" not in table and "not_a_label" not in metrics
        return
    off = not_a_label(table["output"].tolist(), CLASSES)  # an untrained model: mostly off the label set
    assert table["not_a_label"].tolist() == off
    assert metrics["n_not_a_label"] == sum(off) and metrics["not_a_label"] == pytest.approx(sum(off) / 8)
    assert not (table["not_a_label"] & (table["exact_match"] == 1.0)).any()  # off the set is wrong
