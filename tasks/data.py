"""Reading labelled text files and splitting them into train / validation / test.

Reading keeps every column as written plus `source_file` and `source_row` (1-based data row,
header excluded) so that validation can point at the exact row of a bad value.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from tasks.config import DataConfig
from tasks.errors import DataError
from tasks.layout import RunLayout

SPLITS = ("train", "validation", "test")
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_PANDAS_BAD_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass(frozen=True)
class Splits:
    """Train / validation / test frames with columns text, label, label_id, source_file, source_row."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


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


def _read_delimited(path: Path, text: str, sep: str) -> pd.DataFrame:
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
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


def read_table(path: Path, fmt: str = "auto", delimiter: str | None = None) -> pd.DataFrame:
    """Read one data file; adds `source_file` and `source_row`. Errors name the file and line."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    else:
        text = _decode_utf8(path)
        if fmt == "jsonl":
            frame = _read_jsonl(path, text)
        else:
            frame = _read_delimited(path, text, delimiter or ("\t" if fmt == "tsv" else ","))
    frame = frame.astype(object).where(frame.notna(), None)
    frame["source_file"] = str(path)
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


def read_frames(cfg: DataConfig, root: Path = Path()) -> dict[str, pd.DataFrame]:
    """The raw frames: "train", and "test" when the params name a separate test file."""
    files = {"train": cfg.train_path, "test": cfg.test_path}
    return {
        role: read_table(root / path, cfg.format, cfg.csv_delimiter) for role, path in files.items() if path
    }


def _as_label(value: object) -> str:
    text = str(value).strip()
    return text[:-2] if re.fullmatch(r"-?\d+\.0", text) else text


def label_names(train_labels: pd.Series, labels_path: Path | None) -> list[str]:
    """Label names in id order: from `labels_path` (a JSON list) or sorted (numerically if all ints)."""
    if labels_path is not None:
        try:
            listed = json.loads(labels_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{labels_path}: cannot read the label list ({err})") from None
        if not isinstance(listed, list) or not listed:
            raise DataError(f"{labels_path}: expected a non-empty JSON list of label names")
        return [_as_label(label) for label in listed]
    unique = sorted({_as_label(v) for v in train_labels.dropna()})
    if all(re.fullmatch(r"-?\d+", u) for u in unique):
        unique.sort(key=int)
    return unique


def require_columns(frame: pd.DataFrame, cfg: DataConfig) -> None:
    """Fail with the file and the params key when a mapped column is absent."""
    for key, column in (("data.text_column", cfg.text_column), ("data.label_column", cfg.label_column)):
        if column not in frame.columns:
            source = frame["source_file"].iloc[0] if len(frame) else "data"
            found = ", ".join(c for c in frame.columns if c not in ("source_file", "source_row"))
            raise DataError(f"{source}: column '{column}' ({key}) not found; columns are: {found}")


def _normalise(frame: pd.DataFrame, cfg: DataConfig, label2id: dict[str, int]) -> pd.DataFrame:
    require_columns(frame, cfg)
    labels = frame[cfg.label_column].map(_as_label)
    return pd.DataFrame(
        {
            "text": frame[cfg.text_column].astype(str).str.strip(),
            "label": labels,
            "label_id": labels.map(lambda name: label2id.get(name, -1)).astype("int64"),
            "source_file": frame["source_file"],
            "source_row": frame["source_row"].astype("int64"),
        }
    ).reset_index(drop=True)


def split_off(
    frame: pd.DataFrame, size: float | int, seed: int, name: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `frame` into (rest, part) with `part` of `size`, stratified by label when possible.

    Stratification needs two examples of every class on each side; where the data cannot
    give that (tiny samples, singleton classes), the split falls back to a seeded random one.
    """
    n_part = size if isinstance(size, int) else round(len(frame) * size)
    if n_part <= 0:
        return frame, frame.iloc[0:0]
    if n_part >= len(frame):
        raise DataError(f"{name}: asks for {n_part} of {len(frame)} examples, nothing would be left")
    counts = frame["label"].value_counts()
    n_classes = len(counts)
    stratify = (
        frame["label"]
        if counts.min() >= 2 and n_part >= n_classes and len(frame) - n_part >= n_classes
        else None
    )
    rest, part = train_test_split(frame, test_size=n_part, random_state=seed, stratify=stratify)
    return rest.sort_index(), part.sort_index()


def split_frames(frames: dict[str, pd.DataFrame], cfg: DataConfig, root: Path = Path()) -> Splits:
    """Map columns and labels, take the test split (file or fraction), carve validation from train."""
    labels_path = root / cfg.labels_path if cfg.labels_path else None
    require_columns(frames["train"], cfg)
    names = label_names(frames["train"][cfg.label_column], labels_path)
    label2id = {name: i for i, name in enumerate(names)}
    pool = _normalise(frames["train"], cfg, label2id)
    test = _normalise(frames["test"], cfg, label2id) if "test" in frames else None
    return split_rows(pool, test, cfg, names)


def split_rows(pool: pd.DataFrame, test: pd.DataFrame | None, cfg: DataConfig, labels: list[str]) -> Splits:
    """Test from its own file or a fraction of `pool`, the sample caps, then validation from train."""
    if test is None:
        pool, test = split_off(pool, cfg.test_fraction, cfg.seed, "data.test_fraction")
    if cfg.max_test_samples is not None and cfg.max_test_samples < len(test):
        _, test = split_off(test, cfg.max_test_samples, cfg.seed, "data.max_test_samples")
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(pool):
        _, pool = split_off(pool, cfg.max_train_samples, cfg.seed, "data.max_train_samples")
    train, validation = split_off(pool, cfg.validation_fraction, cfg.seed, "data.validation_fraction")
    return Splits(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=test.reset_index(drop=True),
        labels=labels,
    )


def write_splits(splits: Splits, layout: RunLayout) -> None:
    """Save the splits as Parquet and the label list as JSON (the validate step's outputs)."""
    layout.splits_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.frames().items():
        frame.to_parquet(layout.splits_dir / f"{name}.parquet", index=False)
    (layout.splits_dir / "labels.json").write_text(json.dumps(splits.labels, indent=1), encoding="utf-8")


def read_splits(layout: RunLayout) -> Splits:
    """Load what `write_splits` saved."""
    frames = {name: pd.read_parquet(layout.splits_dir / f"{name}.parquet") for name in SPLITS}
    labels = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    return Splits(labels=labels, **frames)
