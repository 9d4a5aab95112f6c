"""Reading every supported format, label mapping and split edge cases; bad files give one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import DataConfig
from tasks.core.errors import DataError
from tasks.core.layout import RunLayout
from tasks.data.reading import read_frames, read_table
from tasks.data.splitting import read_splits, write_splits
from tasks.task_types.classification.records import split_frames

ROWS = [
    {"text": f"message number {i} about {lab}", "label": lab} for i in range(30) for lab in ("a", "b", "c")
]


def _write_all_formats(tmp_path: Path) -> dict[str, Path]:
    frame = pd.DataFrame(ROWS)
    paths = {
        "csv": tmp_path / "d.csv",
        "tsv": tmp_path / "d.tsv",
        "jsonl": tmp_path / "d.jsonl",
        "parquet": tmp_path / "d.parquet",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["tsv"], index=False, sep="\t")
    paths["jsonl"].write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    frame.to_parquet(paths["parquet"], index=False)
    return paths


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_reads_the_same_rows(tmp_path: Path, fmt: str) -> None:
    frame = read_table(_write_all_formats(tmp_path)[fmt])
    assert list(frame["text"]) == [r["text"] for r in ROWS]
    assert list(frame["label"]) == [r["label"] for r in ROWS]
    assert list(frame["source_row"]) == list(range(1, len(ROWS) + 1))
    assert frame["source_file"].iloc[0].endswith(f"d.{fmt}")


def test_declared_format_and_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "emotion.txt"
    path.write_text("text;label_name\ni feel great;joy\ni am sad;sadness\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"cannot tell the format from '\.txt'; set data\.format"):
        read_table(path)
    frame = read_table(path, "csv", ";")
    assert list(frame["label_name"]) == ["joy", "sadness"]


def test_malformed_csv_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,label\nfine,a\nbroken,a,extra\nfine too,b\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == f"{path}: line 3 (row 2): expected 2 fields, saw 3"


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: line 3: byte 0xe9 at offset \d+ is not valid UTF-8"):
        read_table(path)


def test_bad_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: invalid JSON"):
        read_table(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="file is empty"):
        read_table(tmp_path / "empty.csv")


def test_missing_label_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    cfg = DataConfig(train_path=str(path), test_path=None, label_column="intent")
    with pytest.raises(
        DataError, match=r"column 'intent' \(data\.label_column\) not found; columns are: text, label"
    ):
        split_frames(read_frames(cfg), cfg)


def test_stratified_split_by_fraction_is_seeded_and_disjoint(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    cfg = DataConfig(train_path=str(path), test_path=None, test_fraction=0.2, validation_fraction=0.1)
    splits = split_frames(read_frames(cfg), cfg)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (65, 7, 18)
    assert splits.test["label"].value_counts().to_dict() == {"a": 6, "b": 6, "c": 6}
    rows = [set(f["source_row"]) for f in splits.frames().values()]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    again = split_frames(read_frames(cfg), cfg)
    assert again.test["text"].tolist() == splits.test["text"].tolist()
    other = split_frames(read_frames(cfg), cfg.model_copy(update={"seed": 7}))
    assert other.test["text"].tolist() != splits.test["text"].tolist()


def test_separate_test_file_and_sample_caps(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame(ROWS).to_csv(train, index=False)
    pd.DataFrame(ROWS[:12]).to_csv(test, index=False)
    cfg = DataConfig(
        train_path=str(train), test_path=str(test), max_train_samples=30, validation_fraction=0.2
    )
    splits = split_frames(read_frames(cfg), cfg)
    assert len(splits.test) == 12 and len(splits.train) + len(splits.validation) == 30
    assert splits.train["label"].value_counts().min() == 8  # stratified: 10 per class, 2 to validation


def test_integer_labels_sort_numerically_and_map_to_ids(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    rows = [{"text": f"t{i}", "label": lab} for i, lab in enumerate([10, 2, 1] * 10)]
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = DataConfig(train_path=str(path), test_path=None, validation_fraction=0.0)
    splits = split_frames(read_frames(cfg), cfg)
    assert splits.labels == ["1", "2", "10"]
    mapped = dict(zip(splits.train["label"], splits.train["label_id"], strict=True))
    assert mapped == {"1": 0, "2": 1, "10": 2}


def test_label_list_file_fixes_order_and_unknown_labels_get_minus_one(tmp_path: Path) -> None:
    path, labels = tmp_path / "d.csv", tmp_path / "labels.json"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    labels.write_text(json.dumps(["c", "b"]), encoding="utf-8")
    cfg = DataConfig(train_path=str(path), test_path=None, labels_path=str(labels), validation_fraction=0.0)
    splits = split_frames(read_frames(cfg), cfg)
    assert splits.labels == ["c", "b"]
    assert set(splits.train.loc[splits.train["label"] == "a", "label_id"]) == {-1}


def test_singleton_class_falls_back_to_a_random_split(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    rows = [*ROWS[:20], {"text": "lonely", "label": "z"}]
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = DataConfig(train_path=str(path), test_path=None, test_fraction=0.25, validation_fraction=0.0)
    splits = split_frames(read_frames(cfg), cfg)
    assert len(splits.train) + len(splits.test) == 21


def test_fraction_that_leaves_nothing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS[:2]).to_csv(path, index=False)
    cfg = DataConfig(train_path=str(path), test_path=None, test_fraction=0.9)
    with pytest.raises(DataError, match="data.test_fraction: asks for 2 of 2 examples"):
        split_frames(read_frames(cfg), cfg)


def test_splits_round_trip_through_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    cfg = DataConfig(train_path=str(path), test_path=None)
    splits = split_frames(read_frames(cfg), cfg)
    layout = RunLayout(tmp_path / "run")
    write_splits(splits, layout)
    again = read_splits(layout)
    assert again.labels == splits.labels
    pd.testing.assert_frame_equal(again.test, splits.test)
