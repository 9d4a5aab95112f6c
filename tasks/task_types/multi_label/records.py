"""Text/label-set tables as multi-label examples: label cells, label names, the splits.

A label cell is a list of names (JSON Lines, Parquet) or names separated by `data.label_delimiter`
(CSV/TSV; an empty cell is the empty set). Split frames hold `text` (and `text_pair`), `labels`
(the names), `targets` (multi-hot, one float per label in id order: the model's target), `label`
(the row's rarest label, what the shared splitter stratifies on; "" for none), `source_file` and
`source_row`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import DataError
from tasks.data.reading import detect_format
from tasks.data.splitting import Splits, split_rows
from tasks.task_types.classification.records import as_label, label_names, require_columns, text_columns

TARGETS = "targets"  # the multi-hot target column of the split frames (the shared tokenization's)
DELIMITED = ("csv", "tsv")


@dataclass(frozen=True)
class LabelCell:
    """One label cell read: its label names, or why it cannot be read (`labels` is None then;
    a missing cell has neither)."""

    labels: list[str] | None
    problem: str | None = None


def _is_missing(value: Any) -> bool:
    return value is None or (np.isscalar(value) and bool(pd.isna(value)))


def _names(items: list[Any]) -> LabelCell:
    """List items as label names (text or integers); anything nested or blank is a problem."""
    names: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | np.integer):
            return LabelCell(None, f"holds {type(item).__name__} {item!r}, not a label name")
        name = as_label(item)
        if not name:
            return LabelCell(None, "holds an empty label name")
        names.append(name)
    return LabelCell(list(dict.fromkeys(names)))  # a label named twice is one label


def parse_cell(value: Any, delimiter: str, delimited: bool) -> LabelCell:
    """The label names of one cell. `delimited`: the cell comes from a CSV/TSV file, where an empty
    cell is the empty set and a JSON-looking value is a mistake (it would split into `["a"`)."""
    if _is_missing(value):
        return LabelCell([] if delimited else None)
    if isinstance(value, np.ndarray | list | tuple):
        return _names(list(value.tolist() if isinstance(value, np.ndarray) else value))
    if isinstance(value, str):
        text = value.strip()
        if delimited and text[:1] in ("[", "{"):
            return LabelCell(None, f"is a nested value, not labels separated by {delimiter!r}")
        if not text:
            return LabelCell([])
        pieces = [piece.strip() for piece in text.split(delimiter)]
        if "" in pieces:
            return LabelCell(None, f"has an empty label between {delimiter!r} delimiters")
        return _names(pieces)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return LabelCell([as_label(value)])
    return LabelCell(None, f"holds a {type(value).__name__}, not a list of label names")


def is_delimited(frame: pd.DataFrame, cfg: DataConfig) -> bool:
    """Whether the frame was read from a CSV/TSV file (its label cells are delimited strings)."""
    if not len(frame):
        return cfg.format in DELIMITED
    return detect_format(Path(str(frame["source_file"].iloc[0])), cfg.format) in DELIMITED


def label_cells(frame: pd.DataFrame, cfg: DataConfig) -> list[LabelCell]:
    """Every row's label cell of `data.label_column`, parsed."""
    delimited = is_delimited(frame, cfg)
    return [parse_cell(v, cfg.label_delimiter, delimited) for v in frame[cfg.label_column]]


def show_cell(value: Any) -> str | None:
    """A label cell as one line for reports (lists as JSON); a missing cell stays None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)[:200]
    return None if _is_missing(value) else str(value)


def label_sets(frame: pd.DataFrame, cfg: DataConfig) -> list[list[str]]:
    """Every row's label names; the first unreadable cell is one line naming file:row and value."""
    sets = []
    for cell, raw, file, row in zip(
        label_cells(frame, cfg),
        frame[cfg.label_column],
        frame["source_file"],
        frame["source_row"],
        strict=True,
    ):
        if cell.labels is None:
            why = cell.problem or "is missing"
            raise DataError(
                f"{file}:{row}: column '{cfg.label_column}' (data.label_column) {why}: {show_cell(raw)!r}"
            )
        sets.append(cell.labels)
    return sets


def multi_hot(sets: list[list[str]], names: list[str]) -> np.ndarray:
    """Label sets as a (rows, labels) 0/1 float32 matrix in id order; names outside `names` are left out."""
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(sets), len(names)), dtype=np.float32)
    for row, labels in enumerate(sets):
        out[row, [index[name] for name in labels if name in index]] = 1.0
    return out


def _normalise(frame: pd.DataFrame, cfg: DataConfig, names: list[str], counts: pd.Series) -> pd.DataFrame:
    require_columns(frame, cfg)
    sets = label_sets(frame, cfg)
    targets = multi_hot(sets, names)
    # stratify on the rarest label of a row: the labels that are hardest to keep in every split
    rarest = [min(labels, key=lambda n: (counts.get(n, 0), n)) if labels else "" for labels in sets]
    columns: dict[str, Any] = {
        **text_columns(frame, cfg),
        "labels": sets,
        TARGETS: list(targets),
        "label": rarest,
        "source_file": frame["source_file"],
        "source_row": frame["source_row"].astype("int64"),
    }
    return pd.DataFrame({k: list(v) if isinstance(v, pd.Series) else v for k, v in columns.items()})


def split_frames(frames: dict[str, pd.DataFrame], cfg: DataConfig, root: Path = Path()) -> Splits:
    """Map columns and label sets, take the test split (file or fraction), carve validation from train."""
    labels_path = root / cfg.labels_path if cfg.labels_path else None
    require_columns(frames["train"], cfg)
    train_labels = pd.Series([name for labels in label_sets(frames["train"], cfg) for name in labels])
    names = label_names(train_labels, labels_path)
    if not names:
        raise DataError(f"{frames['train']['source_file'].iloc[0]}: no row carries a label; nothing to learn")
    counts = train_labels.value_counts()
    pool = _normalise(frames["train"], cfg, names, counts)
    test = _normalise(frames["test"], cfg, names, counts) if "test" in frames else None
    return split_rows(pool, test, cfg, names)
