"""`evaluate.max_generation_examples` scores a seeded sample stratified by label, not the file's head."""

from __future__ import annotations

import pandas as pd

from tasks.core.config import EvaluateConfig
from tasks.task_types.causal_lm.generation import generation_rows


def _grouped_by_class(classes: int, per_class: int) -> pd.DataFrame:
    """A test split in the order BANKING77's test file has: every row of one class, then the next."""
    labels = [f"intent_{c}" for c in range(classes) for _ in range(per_class)]
    return pd.DataFrame({"prompt": [f"p{i}" for i in range(len(labels))], "label": labels})


def test_a_capped_generation_sample_covers_every_class_and_is_seeded() -> None:
    test = _grouped_by_class(classes=10, per_class=8)
    cfg = EvaluateConfig(max_generation_examples=20, seed=0)
    rows = generation_rows(test, cfg)
    assert len(rows) == 20
    assert rows["label"].value_counts().to_dict() == {f"intent_{c}": 2 for c in range(10)}
    assert rows.equals(generation_rows(test, cfg))  # the champion comparison gets the same rows
    assert list(rows.index) == sorted(rows.index)  # in test order
    other = generation_rows(test, EvaluateConfig(max_generation_examples=20, seed=1))
    assert set(other["prompt"]) != set(rows["prompt"])


def test_no_cap_or_a_cap_above_the_size_keeps_every_row() -> None:
    test = _grouped_by_class(classes=3, per_class=2)
    assert generation_rows(test, EvaluateConfig()).equals(test)
    assert generation_rows(test, EvaluateConfig(max_generation_examples=50)).equals(test)
