"""The bad-input table of the README: each broken file or params value ends at the validate step
(before any training) with one line naming the file and row, the column or the params key; a file
that is valid but unusual (BOM, CRLF, quoted newlines, integer labels) is read correctly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tasks.core.config import apply_overrides, parse_params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.core.roots import allowed_roots, path_settings, require_under_roots
from tasks.steps.validation import run_step

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]

CLASSES = ["card_arrival", "exchange_rate", "lost_card", "top_up"]


def _frame() -> pd.DataFrame:
    rows = [(f"{label.replace('_', ' ')} question number {i}", label) for label in CLASSES for i in range(8)]
    return pd.DataFrame(rows, columns=["text", "label"])


def _csv(frame: pd.DataFrame, **kwargs: Any) -> bytes:
    return str(frame.to_csv(index=False, **kwargs)).encode("utf-8")


def _with(column: str, index: int, value: Any) -> pd.DataFrame:
    frame = _frame().astype({column: object})
    frame.loc[index, column] = value
    return frame


Writer = Callable[[Path], dict[str, Any]]  # writes the file(s) under a folder, returns params overrides


def _file(name: str, content: bytes, **params: Any) -> Writer:
    def write(folder: Path) -> dict[str, Any]:
        (folder / name).write_bytes(content)
        return {"data.train_path": str(folder / name), **params}

    return write


def _parquet_nested(folder: Path) -> dict[str, Any]:
    frame = _frame()
    frame["text"] = [{"body": t} for t in frame["text"]]
    frame.to_parquet(folder / "train.parquet")
    return {"data.train_path": str(folder / "train.parquet")}


def _test_file(frame: pd.DataFrame) -> Writer:
    def write(folder: Path) -> dict[str, Any]:
        (folder / "train.csv").write_bytes(_csv(_frame()))
        (folder / "test.csv").write_bytes(_csv(frame))
        return {"data.train_path": str(folder / "train.csv"), "data.test_path": str(folder / "test.csv")}

    return write


ZW = "\u200b\u200b"
DUPLICATED = (
    "text,label,label\n" + "".join(f"{t},{lab},{lab}\n" for t, lab in _frame().itertuples(index=False))
).encode()
JSONL = "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in _frame().itertuples(index=False))
BAD: list[Any] = [  # (kind, writer, what the one line must contain)
    (
        "latin-1 bytes",
        _file("train.csv", _csv(_frame()).replace(b"card", b"c\xe4rd", 1)),
        ["train.csv", "line"],
    ),
    ("UTF-16 file", _file("train.csv", _frame().to_csv(index=False).encode("utf-16")), ["train.csv"]),
    ("empty file", _file("train.csv", b""), ["train.csv"]),
    ("header only", _file("train.csv", b"text,label\n"), ["train.csv"]),
    (
        "missing label column",
        _file("train.csv", _csv(_frame().rename(columns={"label": "intent"}))),
        ["train.csv", "label"],
    ),
    (
        "missing text column",
        _file("train.csv", _csv(_frame().rename(columns={"text": "body"}))),
        ["train.csv", "text"],
    ),
    ("duplicated column", _file("train.csv", DUPLICATED), ["train.csv", "label"]),
    ("wrong delimiter", _file("train.csv", _csv(_frame(), sep=";")), ["train.csv"]),
    ("extra fields on a row", _file("train.csv", _csv(_frame()) + b"a,b,c,d\n"), ["train.csv", "line"]),
    ("empty label", _file("train.csv", _csv(_with("label", 3, None))), ["train.csv", "4"]),
    ("float labels", _file("train.csv", _csv(_with("label", 5, 1.5))), ["train.csv"]),
    pytest.param(
        "one class only", _file("train.csv", _csv(_frame().assign(label="x"))), ["train.csv", "label"]
    ),
    ("empty text", _file("train.csv", _csv(_with("text", 6, "   "))), ["train.csv", "7"]),
    pytest.param(
        "zero-width-only text",
        _file("train.csv", _csv(_with("text", 2, ZW))),
        ["train.csv", "3"],
    ),
    ("over-long text", _file("train.csv", _csv(_with("text", 1, "word " * 1000))), ["train.csv:2", "text"]),
    ("too few examples of a class", _file("train.csv", _csv(_frame().iloc[:25])), ["train.csv", "label"]),
    (
        "duplicate texts",
        _file("train.csv", _csv(_with("text", 9, _frame().loc[8, "text"]))),
        ["train.csv:10", "text"],
    ),
    (
        "test label never seen in train",
        _test_file(_with("label", 0, "crypto_refund")),
        ["test.csv", "crypto_refund"],
    ),
    (
        "JSONL line not JSON",
        _file("train.jsonl", (JSONL + "\n{not json\n").encode()),
        ["train.jsonl", "line"],
    ),
    ("Parquet nested column", _parquet_nested, ["train.parquet", "text"]),
    ("missing data file", lambda folder: {"data.train_path": str(folder / "absent.csv")}, ["absent.csv"]),
    ("unsupported file type", _file("train.xlsx", b"PK\x03\x04"), ["train.xlsx"]),
    (
        "params value of the wrong type",
        _file("train.csv", _csv(_frame()), **{"train.epochs": "three"}),
        ["train.epochs"],
    ),
    ("unknown params key", _file("train.csv", _csv(_frame()), **{"train.epoch": 3}), ["train.epoch"]),
    (
        "fraction out of range",
        _file("train.csv", _csv(_frame()), **{"data.test_fraction": 1.5}),
        ["data.test_fraction"],
    ),
]
GOOD = [
    ("UTF-8 BOM", _file("train.csv", b"\xef\xbb\xbf" + _csv(_frame()))),
    ("CRLF line ends", _file("train.csv", _csv(_frame()).replace(b"\n", b"\r\n"))),
    ("quoted newline in a text", _file("train.csv", _csv(_with("text", 4, "line one\nline two")))),
    ("integer labels", _file("train.csv", _csv(_frame().assign(label=[i % 4 for i in range(32)])))),
]


def _validate(tmp_path: Path, writer: Writer) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir()
    overrides = {"data.test_path": None, **writer(data)}
    raw = apply_overrides(
        {"data": {"name": "table", "text_column": "text", "label_column": "label"}}, overrides
    )
    params = parse_params(raw, "params.yaml")
    return run_step(params, RunLayout(tmp_path / "run"))


@pytest.mark.parametrize(
    ("kind", "writer", "needles"),
    BAD,
    ids=[str(case.values[0] if hasattr(case, "values") else case[0]) for case in BAD],
)
def test_bad_input_is_one_line_naming_the_place(
    tmp_path: Path, kind: str, writer: Writer, needles: list[str]
) -> None:
    try:
        _validate(tmp_path, writer)
    except RefineryError as err:
        message = str(err)
    else:
        raise AssertionError(f"{kind}: accepted without an error")
    print(f"TABLE | {kind} | {message}")
    assert "\n" not in message and all(needle in message for needle in needles), message
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.parametrize(("kind", "writer"), GOOD, ids=[case[0] for case in GOOD])
def test_valid_but_unusual_files_are_read_correctly(tmp_path: Path, kind: str, writer: Writer) -> None:
    _validate(tmp_path, writer)
    splits = RunLayout(tmp_path / "run").splits_dir
    frames = pd.concat(pd.read_parquet(splits / f"{s}.parquet") for s in ("train", "validation", "test"))
    assert len(frames) == 32 and frames["text"].str.startswith("\ufeff").sum() == 0
    if kind == "quoted newline in a text":
        assert "line one\nline two" in set(frames["text"])


def test_a_path_outside_the_roots_in_team_mode(tmp_path: Path) -> None:
    roots = allowed_roots({"REFINERY_PATH_ROOTS": str(tmp_path / "data")})
    params = parse_params({"data": {"train_path": "/etc/passwd", "test_path": None}})
    with pytest.raises(RefineryError, match=r"^'data.train_path' = '/etc/passwd' is outside"):
        require_under_roots(path_settings(params.as_dict()), roots)
