"""Text pairs (`data.text_pair_column`) for a classifier: the split frames, the data contract on
both texts with duplicates and leakage judged on the pair, the row hashes and the card."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from tasks.core.config import DataConfig, Params, ValidateConfig
from tasks.core.errors import DataError
from tasks.data.splitting import row_hashes
from tasks.task_types.classification.packaging import card_texts
from tasks.task_types.classification.records import require_flat_values, split_frames
from tasks.task_types.classification.validation import validate_frames
from tasks.validation.report import ValidationResult

DATA = DataConfig(
    text_column="q1", text_pair_column="q2", label_column="label", test_path=None, validation_fraction=0.0
)
CFG = ValidateConfig()


def _frame(file: str, rows: list[tuple[object, object, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["q1", "q2", "label"], dtype=object)
    frame["source_file"] = file
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


def _rows(tag: str, n: int = 3) -> list[tuple[object, object, object]]:
    return [
        (f"{tag} where is my card {i}", f"{tag} {label} card question {i}", label)
        for label in ("duplicate", "different")
        for i in range(n)
    ]


def _failed(result: ValidationResult) -> dict[str, list[tuple[str, int | None, str | None]]]:
    return {
        o.name: [(r.file, r.row, r.value) for r in o.offending] for o in result.expectations if not o.success
    }


def _validate(
    train: list[tuple[object, object, object]], test: list[tuple[object, object, object]]
) -> ValidationResult:
    frames = {"train": _frame("data/train.csv", train), "test": _frame("data/test.csv", test)}
    return validate_frames(frames, DATA, CFG)


def test_split_frames_carry_the_stripped_second_text() -> None:
    frame = _frame(
        "data/pairs.csv",
        [(f" where {i} ", f"  card {i}\n", ["duplicate", "different"][i % 2]) for i in range(10)],
    )
    splits = split_frames({"train": frame}, DATA)
    rows = pd.concat([splits.train, splits.test]).sort_values("source_row")
    assert list(rows.columns[:2]) == ["text", "text_pair"]
    assert rows["text_pair"].tolist() == [f"card {i}" for i in range(10)]
    assert rows["text"].tolist() == [f"where {i}" for i in range(10)]


def test_a_missing_pair_column_names_the_file_and_the_key() -> None:
    frame = _frame("data/pairs.csv", _rows("train")).drop(columns="q2")
    with pytest.raises(
        DataError, match=r"^data/pairs\.csv: column 'q2' \(data\.text_pair_column\) not found"
    ):
        split_frames({"train": frame}, DATA)


def test_a_nested_second_text_is_refused_with_its_row() -> None:
    rows = _rows("train")
    rows[2] = (rows[2][0], {"body": "card"}, rows[2][2])
    with pytest.raises(
        DataError, match=r"^data/train\.csv:3: column 'q2' \(data\.text_pair_column\) holds a nested"
    ):
        require_flat_values(_frame("data/train.csv", rows), DATA)


def test_both_texts_are_checked_and_offenders_named_by_file_and_row() -> None:
    train = _rows("train")
    train[1] = (train[1][0], "   ", train[1][2])  # a blank second text
    test = _rows("test", 1)
    test[0] = (test[0][0], None, test[0][2])  # a missing second text
    result = _validate(train, test)
    failed = _failed(result)
    assert failed["text_pair_not_empty"] == [("data/train.csv", 2, "   ")]
    assert failed["text_pair_not_null"] == [("data/test.csv", 1, None)]
    assert set(failed) == {"text_pair_not_empty", "text_pair_not_null"}
    message = result.failure_message(5)
    assert (
        "text_pair_not_empty on data/train.csv column 'q2'" in message and "data/train.csv:2 '   '" in message
    )

    frames = {"train": _frame("data/train.csv", _rows("train")).drop(columns="q2")}
    missing = validate_frames(frames, DATA, CFG)
    assert "text_pair_column_present on data/train.csv column 'q2'" in missing.failure_message(5)


def test_duplicates_are_of_whole_pairs() -> None:
    train = _rows("train")
    train[3] = (train[0][0], "another second text", train[3][2])  # the same first text, another pair
    assert _validate(train, _rows("test", 1)).success
    train[4] = (f" {train[0][0]}", train[0][1], train[4][2])  # the same pair as row 1, but for a blank
    offenders = _failed(_validate(train, _rows("test", 1)))["no_duplicate_pairs"]
    assert [(f, r) for f, r, _ in offenders] == [("data/train.csv", 1), ("data/train.csv", 5)]
    assert "duplicate pairs" in _validate(train, _rows("test", 1)).failure_message(5)


def test_leakage_is_of_whole_pairs() -> None:
    train, test = _rows("train"), _rows("test", 1)
    test[0] = (train[0][0], "a second text train never had", test[0][2])
    assert _validate(train, test).success  # one text seen in train is not the same example
    test[1] = (train[2][0], train[2][1], test[1][2])
    result = _validate(train, test)
    assert [(f, r) for f, r, _ in _failed(result)["no_train_test_leakage"]] == [("data/test.csv", 2)]
    assert "1 test pairs (50.0 %) also occur in train" in result.failure_message(5)


def test_row_hashes_of_pairs_hash_both_texts() -> None:
    single = pd.DataFrame({"text": [" where is my card "]})
    assert row_hashes(single) == [hashlib.sha256(b"where is my card").hexdigest()[:20]]  # unchanged
    pairs = pd.DataFrame({"text": ["where is my card", "where is my card "], "text_pair": ["a", "b"]})
    first, second = row_hashes(pairs)
    assert first != second and first not in row_hashes(single)
    assert row_hashes(pairs.assign(text_pair=[" a", "a"])) == [first, first]


def test_the_card_says_the_model_reads_pairs() -> None:
    params = Params.model_validate({"data": {"text_pair_column": "q2"}})
    summary, limits = card_texts(params, ["duplicate", "different"])
    assert summary.startswith("Text-pair classifier") and "`text_pair`" in limits
    assert card_texts(Params(), ["a", "b"])[0].startswith("Text classifier")
