"""Every file format × string/integer labels × separate/split test: one label normalisation before the
data contract and the splits; JSON arrays and objects of splits read like JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import parse_params
from tasks.core.errors import DataError
from tasks.data.reading import read_frames, read_table
from tasks.task_types import task_type_for

LABELS = {"string": ["balance", "refund", "transfer"], "integer": [3, 7, 12]}


def _rows(kind: str, tag: str, per_class: int) -> list[dict[str, object]]:
    return [
        {"text": f"{tag} message {i} about {label}", "label": label}
        for label in LABELS[kind]
        for i in range(per_class)
    ]


def _write(rows: list[dict[str, object]], path: Path) -> Path:
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("separate_test", [True, False], ids=["test-file", "test-fraction"])
@pytest.mark.parametrize("kind", ["string", "integer"])
@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_labels_validate_and_split_alike_in_every_format(
    tmp_path: Path, ext: str, kind: str, separate_test: bool
) -> None:
    train = _write(_rows(kind, "train", 10), tmp_path / f"train.{ext}")
    test = _write(_rows(kind, "test", 2), tmp_path / f"test.{ext}") if separate_test else None
    data = {"train_path": str(train), "test_path": str(test) if test else None, "label_column": "label"}
    params = parse_params({"data": data})
    task_type = task_type_for(params)
    frames = read_frames(params.data)
    result = task_type.validate(frames, params)
    assert result.success, result.failure_message(5)
    splits = task_type.split(frames, params)
    assert splits.labels == [str(label) for label in LABELS[kind]]
    assert set(splits.test["label"]) == set(splits.labels) and (splits.test["label_id"] >= 0).all()


def test_a_json_array_of_records_is_read_as_alpaca_datasets_are_published(tmp_path: Path) -> None:
    records = [
        {"instruction": "Say hi", "input": "", "output": "hi"},
        {"instruction": "Add", "input": "1 + 1", "output": "2"},
    ]
    path = tmp_path / "alpaca_en_demo.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    frame = read_table(path)
    assert list(frame["output"]) == ["hi", "2"] and list(frame["source_row"]) == [1, 2]
    lines = tmp_path / "lines.json"  # JSON Lines under a .json name still read
    lines.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert list(read_table(lines)["instruction"]) == ["Say hi", "Add"]
    path.write_text(json.dumps([records[0], "oops"]), encoding="utf-8")
    with pytest.raises(DataError, match=r"alpaca_en_demo\.json: record 2: expected a JSON object, got str"):
        read_table(path)


def test_a_json_object_of_splits_gives_train_and_test(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    document = {"train": _rows("string", "train", 4), "test": _rows("string", "test", 1)}
    path.write_text(json.dumps(document), encoding="utf-8")
    params = parse_params({"data": {"train_path": str(path), "test_path": str(path)}})
    frames = read_frames(params.data)
    assert len(frames["train"]) == 12 and len(frames["test"]) == 3
    assert frames["test"]["text"].iloc[0] == "test message 0 about balance"
    path.write_text(json.dumps({"training": document["train"]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"a JSON object of splits \('training'\) has no 'train'"):
        read_table(path)


def test_a_single_class_is_refused_naming_the_column(tmp_path: Path) -> None:
    rows = [{"text": f"message {i}", "label": "card_arrival"} for i in range(120)]
    train = _write(rows, tmp_path / "train.csv")
    params = parse_params({"data": {"train_path": str(train), "test_path": None, "label_column": "label"}})
    result = task_type_for(params).validate(read_frames(params.data), params)
    assert not result.success
    assert [o.name for o in result.failed] == ["at_least_two_classes"]
    assert "train needs at least two classes in 'label' (data.label_column)" in result.failure_message(5)
