"""The Great Expectations suite, run for real on crafted frames: each check names its file:row offenders."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import DataConfig, ValidateConfig
from tasks.core.errors import DataValidationError
from tasks.task_types.classification.validation import validate_frames
from tasks.validation.report import ValidationResult, check, write_report
from tests.conftest import REPO_ROOT

DATA = DataConfig(text_column="text", label_column="label")
CFG = ValidateConfig()
LABELS = ("balance", "refund", "transfer")


def _frame(
    file: str, rows: list[tuple[str | None, str | None]], columns: tuple[str, str] = ("text", "label")
) -> pd.DataFrame:
    """A frame as the reader returns it: the file's columns as str, plus source_file / source_row."""
    frame = pd.DataFrame(rows, columns=list(columns), dtype=object)
    frame["source_file"] = file
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


def _clean_rows(tag: str, n: int = 3) -> list[tuple[str | None, str | None]]:
    return [(f"{tag} question {i} about my {label}", label) for label in LABELS for i in range(n)]


def _frames(
    train: list[tuple[str | None, str | None]] | None = None,
    test: list[tuple[str | None, str | None]] | None = None,
) -> dict[str, pd.DataFrame]:
    return {
        "train": _frame("data/train.csv", train if train is not None else _clean_rows("train")),
        "test": _frame("data/test.csv", test if test is not None else _clean_rows("test", 1)),
    }


def _failed(result: ValidationResult) -> dict[tuple[str, str], list[tuple[str, int | None, str | None]]]:
    """(name, file) of each failed expectation -> its offenders as (file, row, value)."""
    return {
        (o.name, o.file): [(r.file, r.row, r.value) for r in o.offending]
        for o in result.expectations
        if not o.success
    }


def test_clean_frames_pass_every_expectation() -> None:
    result = validate_frames(_frames(), DATA, CFG, known_labels=list(LABELS))
    assert result.success, result.failure_message(10)
    names = [o.name for o in result.expectations]
    assert names.count("text_not_null") == 2  # once per file
    for name in ("labels_in_known_set", "classes_have_min_examples", "test_labels_seen_in_train"):
        assert name in names
    assert names[-1] == "no_train_test_leakage"
    assert all(o.why for o in result.expectations)
    assert result.statistics["rows_train"] == 9
    assert result.statistics["rows_test"] == 3
    assert result.statistics["classes_train"] == 3
    assert result.statistics["expectations_failed"] == 0
    check(result, CFG)  # does not raise


def test_train_only_runs_no_cross_file_test_checks() -> None:
    result = validate_frames({"train": _frames()["train"]}, DATA, CFG)
    names = {o.name for o in result.expectations}
    assert result.success
    assert "no_train_test_leakage" not in names and "test_labels_seen_in_train" not in names
    assert "labels_in_known_set" not in names  # no label set given


def test_blank_text_is_reported_at_its_row() -> None:
    rows = _clean_rows("train")
    rows[2] = ("   ", "balance")
    result = validate_frames(_frames(train=rows), DATA, CFG)
    assert _failed(result) == {("text_not_empty", "data/train.csv"): [("data/train.csv", 3, "   ")]}


def test_null_text_and_null_label_are_reported() -> None:
    test = _clean_rows("test", 1)
    test[0] = (None, "balance")
    test[1] = ("where is my refund", None)
    result = validate_frames(_frames(test=test), DATA, CFG)
    failed = _failed(result)
    assert failed[("text_not_null", "data/test.csv")] == [("data/test.csv", 1, None)]
    assert failed[("label_not_null", "data/test.csv")] == [("data/test.csv", 2, None)]


def test_too_long_text_is_reported() -> None:
    rows = _clean_rows("train")
    rows[4] = ("x" * 51, "refund")
    result = validate_frames(_frames(train=rows), DATA, ValidateConfig(max_text_length=50))
    assert _failed(result) == {("text_not_too_long", "data/train.csv"): [("data/train.csv", 5, "x" * 51)]}
    assert "1 texts (11.1 %) are longer than validate.max_text_length = 50 characters" in (
        result.failure_message(5)
    )


def test_duplicates_after_strip_show_every_copy_and_respect_the_allowed_fraction() -> None:
    rows = _clean_rows("train")
    rows[7] = (f"\n{rows[1][0]}  ", rows[1][1])  # same text as row 2 but for blanks
    result = validate_frames(_frames(train=rows), DATA, CFG)
    offenders = _failed(result)[("no_duplicate_texts", "data/train.csv")]
    assert [(f, r) for f, r, _ in offenders] == [("data/train.csv", 2), ("data/train.csv", 8)]
    assert offenders[1][2] == rows[7][0]  # the value as written, not the stripped one
    assert (
        "2 duplicate texts (22.2 %) exceed validate.max_duplicate_fraction = 0; "
        "deduplicate the file or raise the limit" in result.failure_message(5)
    )
    assert validate_frames(_frames(train=rows), DATA, ValidateConfig(max_duplicate_fraction=0.25)).success


def test_missing_label_column_is_reported_and_its_checks_skipped() -> None:
    frames = _frames()
    frames["test"] = _frame("data/test.csv", _clean_rows("test", 1), columns=("text", "intent"))
    result = validate_frames(frames, DATA, CFG, known_labels=list(LABELS))
    assert set(_failed(result)) == {("label_column_present", "data/test.csv")}
    on_test = [o.name for o in result.expectations if o.file == "data/test.csv"]
    assert "label_not_null" not in on_test and "test_labels_seen_in_train" not in on_test
    assert "text_not_null" in on_test
    assert "label_column_present on data/test.csv column 'label' (column missing)" in result.failure_message(
        5
    )


def test_class_below_minimum_is_named_with_its_count() -> None:
    rows = [*_clean_rows("train"), ("please close my account", "close_account")]
    result = validate_frames(_frames(train=rows), DATA, ValidateConfig(min_examples_per_class=2))
    outcome = next(o for o in result.expectations if o.name == "classes_have_min_examples")
    assert not outcome.success
    assert [(r.file, r.row, r.value, r.note) for r in outcome.offending] == [
        ("data/train.csv", None, "close_account", "1 examples")
    ]
    assert "'close_account' (1 examples)" in result.failure_message(5)
    assert "1 of 4 classes have fewer examples than validate.min_examples_per_class = 2" in (
        result.failure_message(5)
    )


def test_label_only_in_test_points_at_the_test_row() -> None:
    test = _clean_rows("test", 1)
    test[1] = ("how do I close my account", "close_account")
    result = validate_frames(_frames(test=test), DATA, CFG)
    assert _failed(result) == {
        ("test_labels_seen_in_train", "data/test.csv"): [("data/test.csv", 2, "close_account")]
    }


def test_label_outside_the_known_set_is_reported_in_each_file() -> None:
    rows = _clean_rows("train")
    rows[0] = (rows[0][0], "balanse")
    result = validate_frames(_frames(train=rows), DATA, CFG, known_labels=list(LABELS))
    failed = _failed(result)
    assert failed[("labels_in_known_set", "data/train.csv")] == [("data/train.csv", 1, "balanse")]


def test_leakage_shows_the_test_rows_unless_allowed() -> None:
    test = _clean_rows("test", 1)
    train = _clean_rows("train")
    test[2] = (f"  {train[5][0]}\n", train[5][1])
    result = validate_frames(_frames(train=train, test=test), DATA, CFG)
    assert _failed(result) == {
        ("no_train_test_leakage", "data/train.csv+data/test.csv"): [("data/test.csv", 3, test[2][0])]
    }
    allowed = validate_frames(_frames(train=train, test=test), DATA, ValidateConfig(allow_leakage=True))
    assert allowed.success
    leak = next(o for o in allowed.expectations if o.name == "no_train_test_leakage")
    assert leak.unexpected_count == 1  # still reported, no longer failing
    assert "also occur in train and validate.allow_leakage = false" in result.failure_message(5)


def test_failure_message_is_one_line_naming_every_failure_and_capping_rows() -> None:
    rows = _clean_rows("train")
    for i in (2, 4, 6):
        rows[i] = ("\t\n", rows[i][1])
    test = _clean_rows("test", 1)
    test[0] = ("fine text", "unknown_label")
    result = validate_frames(_frames(train=rows, test=test), DATA, CFG)
    message = result.failure_message(2)
    assert "\n" not in message
    assert message.startswith(
        "data validation failed: text_not_empty on data/train.csv column 'text': 3 texts (33.3 %) are "
        "shorter than validate.min_text_length = 1 characters without blanks and invisible characters; "
    )
    assert "data/train.csv:3 '\\t\\n'; data/train.csv:5 '\\t\\n'; ... 1 more)" in message
    assert (
        "test_labels_seen_in_train on data/test.csv column 'label' (data/test.csv:1 'unknown_label')"
        in message
    )
    with pytest.raises(DataValidationError) as raised:
        check(result, ValidateConfig(max_failed_rows_shown=2))
    assert str(raised.value) == message


def test_report_json_round_trips_and_markdown_lists_offenders(tmp_path: Path) -> None:
    rows = _clean_rows("train")
    rows[2] = ("", "balance")
    result = validate_frames(_frames(train=rows), DATA, CFG)
    json_path, md_path = tmp_path / "validation" / "result.json", tmp_path / "validation" / "report.md"
    write_report(result, json_path, md_path)
    text = json_path.read_text(encoding="utf-8")
    assert ValidationResult.from_json(text) == result
    raw = json.loads(text)
    assert raw["success"] is False
    assert list(raw) == sorted(raw)  # stable key order for diffs
    assert result.to_json() == text  # same content, same bytes
    markdown = md_path.read_text(encoding="utf-8")
    assert "# Data validation ❌ failed" in markdown
    assert "| ❌ | text_not_empty |" in markdown and "| ✅ | text_not_null |" in markdown
    assert "| data/train.csv | 3 | '' |" in markdown


BANKING77 = REPO_ROOT / "data" / "banking77"  # the bundled copy, checked out by `make data`


def test_banking77_near_duplicates_and_leaks_are_found() -> None:
    """BANKING77 holds texts that differ only by newlines: 4 pairs in train, 6 test texts also in train."""
    frames = {}
    for split in ("train", "test"):
        frame = pd.read_csv(BANKING77 / f"{split}.csv", dtype=str)
        frames[split] = frame.assign(source_file=f"{split}.csv", source_row=range(1, len(frame) + 1))
    data = DataConfig(text_column="text", label_column="category")
    failed = _failed(validate_frames(frames, data, CFG))
    assert [r for _, r, _ in failed[("no_duplicate_texts", "train.csv")]] == [
        1247,
        1291,
        1711,
        1725,
        4595,
        4596,
        6911,
        6966,
    ]
    assert [r for _, r, _ in failed[("no_train_test_leakage", "train.csv+test.csv")]] == [
        555,
        977,
        978,
        1433,
        1475,
        2150,
    ]
    tolerant = ValidateConfig(max_duplicate_fraction=0.001, allow_leakage=True)
    assert validate_frames(frames, data, tolerant).success
