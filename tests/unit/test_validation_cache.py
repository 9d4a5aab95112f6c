"""The key under which a finished validation is reused: the data as read, cell by cell, and the
params and code that judge it; nothing else."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.core.config import parse_params
from tasks.core.layout import RunLayout
from tasks.steps.validation import validation_key


def _frames(texts: list[str]) -> dict[str, pd.DataFrame]:
    train = pd.DataFrame(
        {"text": texts, "category": ["a", "b"] * (len(texts) // 2),
         "source_file": "train.csv", "source_row": range(2, len(texts) + 2)}
    )  # fmt: skip
    return {"train": train}


def test_the_key_follows_the_data_and_the_validate_params_only(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    params = parse_params({})
    texts = ["hello there", "good bye", "top up failed", "card lost"]
    key = validation_key(_frames(texts), params, layout)
    assert validation_key(_frames(texts), params, layout) == key  # the same data: the same key
    assert validation_key(_frames([*texts[:3], "card lost!"]), params, layout) != key  # one cell
    moved = _frames(texts)
    moved["train"]["source_row"] = moved["train"]["source_row"] + 1  # the same texts on other rows
    assert validation_key(moved, params, layout) != key
    looser = parse_params({"validate": {"max_duplicate_fraction": 0.5}})
    assert validation_key(_frames(texts), looser, layout) != key
    # training and registry settings do not judge data: a run with another seed reuses the validation
    other = parse_params({"train": {"seed": 7, "learning_rate": 1e-5}, "register": {"model_name": "x"}})
    assert validation_key(_frames(texts), other, layout) == key


def test_nested_cells_have_a_key_too(tmp_path: Path) -> None:
    """A nested JSONL/Parquet column cannot be hashed by pandas; the contract refuses it, so the key
    must not fail first."""
    layout, params = RunLayout(tmp_path / "run"), parse_params({})
    nested = _frames(["a text", "b text"])
    nested["train"]["text"] = [{"t": "a text"}, ["b", "text"]]
    key = validation_key(nested, params, layout)
    other = _frames(["a text", "b text"])
    other["train"]["text"] = [{"t": "a text!"}, ["b", "text"]]
    assert validation_key(other, params, layout) != key
    none_or_text = _frames(["x", "y"])
    none_or_text["train"]["text"] = [None, {"t": 1}]
    as_text = _frames(["x", "y"])
    as_text["train"]["text"] = ["None", {"t": 1}]
    assert validation_key(none_or_text, params, layout) != validation_key(as_text, params, layout)


def test_an_edited_labels_file_is_validated_again(tmp_path: Path) -> None:
    """data.labels_path is read by the contract (labels must be among them): its bytes are in the key."""
    labels = tmp_path / "labels.json"
    labels.write_text('["a", "b"]')
    layout, params = RunLayout(tmp_path / "run"), parse_params({"data": {"labels_path": str(labels)}})
    frames = _frames(["one", "two"])
    key = validation_key(frames, params, layout)
    labels.write_text('["a", "c"]')
    assert validation_key(frames, params, layout) != key
