"""Reading the user's data files into data frames, whatever the task type.

Reading keeps every column as written plus `source_file` and `source_row` (1-based data row,
header excluded; for a CoNLL file, the line a sentence starts on) so that validation can point at
the exact row of a bad value.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import DataError

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
}
CONLL_COLUMNS = ("tokens", "tags")  # the columns a CoNLL file is read into: one list of each per sentence
_DOCSTART = "-DOCSTART-"
_PANDAS_BAD_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def detect_format(path: Path, declared: str) -> str:
    """The file format: as declared in params, else from the extension."""
    if declared != "auto":
        return declared
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from '{path.suffix}'; set data.format")
    return fmt


def _decode_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: byte 0x{raw[err.start]:02x} at offset {err.start} is not valid UTF-8"
        ) from None


def _require_unique_header(path: Path, text: str, sep: str, quoting: Literal[0, 1, 2, 3]) -> None:
    """pandas renames a repeated column (`label`, `label.1`): which one holds the data is a guess.
    Unnamed columns (trailing separators) are left to pandas, which names them apart."""
    if len(sep) != 1:  # a regex separator: pandas' own parsing decides
        return
    header = next(csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting), [])
    seen = [name.strip() for name in header]
    repeated = sorted({name for name in seen if name and seen.count(name) > 1})
    if repeated:
        name = repeated[0]
        raise DataError(
            f"{path}: line 1: column '{name}' appears {seen.count(name)} times in the header; "
            "rename or drop the copies"
        )


def _read_delimited(path: Path, text: str, sep: str) -> pd.DataFrame:
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    _require_unique_header(path, text, sep, quoting)
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""], quoting=quoting
        )
    except pd.errors.ParserError as err:
        found = _PANDAS_BAD_LINE.search(str(err))
        if found:
            expected, line, saw = found.groups()
            raise DataError(
                f"{path}: line {line} (row {int(line) - 1}): expected {expected} fields, saw {saw}"
            ) from None
        raise DataError(f"{path}: malformed {sep!r}-separated file: {str(err).strip()}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {number}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    if not records:
        raise DataError(f"{path}: file is empty")
    return pd.DataFrame.from_records(records)


def _read_conll(path: Path, text: str) -> tuple[pd.DataFrame, list[int]]:
    """CoNLL-style `token ... tag` lines (blank-separated: the token is the first field, the tag the
    last, so CoNLL-2003's four columns read too), one row per sentence; `-DOCSTART-` lines end a
    sentence and are skipped. Also returns the line each sentence starts on."""
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    starts: list[int] = []
    words: list[str] = []
    labels: list[str] = []
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        fields = line.split()
        if not fields or fields[0] == _DOCSTART:
            if words:
                tokens.append(words)
                tags.append(labels)
                words, labels = [], []
            continue
        if len(fields) < 2:
            raise DataError(
                f"{path}: line {number}: expected a token and its tag separated by blanks, got {line!r}"
            )
        if not words:
            starts.append(number)
        words.append(fields[0])
        labels.append(fields[-1])
    if not tokens:
        raise DataError(f"{path}: no sentences (one 'token tag' per line, a blank line between sentences)")
    return pd.DataFrame({CONLL_COLUMNS[0]: tokens, CONLL_COLUMNS[1]: tags}), starts


def _records_frame(path: Path, records: list[object], where: str) -> pd.DataFrame:
    """A JSON array of objects as a frame; a non-object names its 1-based record number."""
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(
                f"{path}: {where}record {number}: expected a JSON object, got {type(record).__name__}"
            )
    if not records:
        raise DataError(f"{path}: {where}no records")
    return pd.DataFrame.from_records(records)


def _read_json(path: Path, text: str, split: str) -> pd.DataFrame:
    """A JSON document: an array of records (Alpaca, LLaMA-Factory), or an object of splits
    (`{"train": [...], "test": [...]}`, the one named `split` is read); else JSON Lines."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(path, text)  # several documents, one a line (or a broken line: named there)
    if isinstance(document, list):
        return _records_frame(path, document, "")
    if isinstance(document, dict) and document and all(isinstance(v, list) for v in document.values()):
        if split not in document:
            raise DataError(
                f"{path}: a JSON object of splits ({', '.join(map(repr, document))}) has no '{split}' split"
            )
        return _records_frame(path, document[split], f"split '{split}': ")
    return _read_jsonl(path, text)  # one record on one line


def read_table(
    path: Path, fmt: str = "auto", delimiter: str | None = None, split: str = "train"
) -> pd.DataFrame:
    """Read one data file; adds `source_file` and `source_row`. Errors name the file and line.

    `split`: which split of a JSON object of splits to read (`train` or `test`)."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    fmt = detect_format(path, fmt)
    lines: list[int] | None = None  # CoNLL: the line each sentence starts on, its `source_row`
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    else:
        text = _decode_utf8(path)
        if fmt == "jsonl":
            frame = _read_jsonl(path, text)
        elif fmt == "conll":
            frame, lines = _read_conll(path, text)
        elif fmt == "json":
            frame = _read_json(path, text, split)
        else:
            frame = _read_delimited(path, text, delimiter or ("\t" if fmt == "tsv" else ","))
    if frame.empty:  # a header and nothing under it: every later check would pass on no rows
        raise DataError(f"{path}: no data rows (columns {', '.join(map(str, frame.columns)) or 'none'})")
    frame = frame.astype(object).where(frame.notna(), None)
    frame["source_file"] = str(path)
    frame["source_row"] = range(1, len(frame) + 1) if lines is None else lines
    return frame


def read_frames(cfg: DataConfig, root: Path = Path()) -> dict[str, pd.DataFrame]:
    """The raw frames: "train", and "test" when the params name a separate test file."""
    files = {"train": cfg.train_path, "test": cfg.test_path}
    return {
        role: read_table(root / path, cfg.format, cfg.csv_delimiter, split=role)
        for role, path in files.items()
        if path
    }
