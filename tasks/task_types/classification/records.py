"""Text/label tables as classifier examples: label names and ids, the mapped columns, the splits.

Split frames hold `text`, `label` (the name), `label_id`, `source_file` and `source_row`; with
`data.text_pair_column` set, also `text_pair` (the second text).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import DataError
from tasks.data.splitting import Splits, split_rows


def as_label(value: object) -> str:
    """A label value as the name the model uses: `7`, `7.0` and `" 7"` are all `"7"`; `"007"` stays."""
    text = str(value).strip()
    return text[:-2] if re.fullmatch(r"-?\d+\.0", text) else text


def normalise_labels(frames: dict[str, pd.DataFrame], label_column: str) -> dict[str, pd.DataFrame]:
    """The frames with their label column as label names (missing labels stay missing), so the data
    contract and the splits compare the same values whatever the file format wrote (int, float, str)."""
    out = {}
    for key, frame in frames.items():
        if label_column in frame.columns:
            labels = frame[label_column].map(lambda v: None if v is None or pd.isna(v) else as_label(v))
            frame = frame.assign(**{label_column: labels.astype(object)})
        out[key] = frame
    return out


def label_names(train_labels: pd.Series, labels_path: Path | None) -> list[str]:
    """Label names in id order: from `labels_path` (a JSON list) or sorted (numerically if all ints)."""
    if labels_path is not None:
        try:
            listed = json.loads(labels_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{labels_path}: cannot read the label list ({err})") from None
        if not isinstance(listed, list) or not listed:
            raise DataError(f"{labels_path}: expected a non-empty JSON list of label names")
        return [as_label(label) for label in listed]
    unique = sorted({as_label(v) for v in train_labels.dropna()})
    if all(re.fullmatch(r"-?\d+", u) for u in unique):
        unique.sort(key=int)
    return unique


def mapped_columns(cfg: DataConfig) -> list[tuple[str, str]]:
    """(params key, column) of every column the examples are made of: text, label, the second text."""
    mapped = [("data.text_column", cfg.text_column), ("data.label_column", cfg.label_column)]
    if cfg.text_pair_column is not None:
        mapped.append(("data.text_pair_column", cfg.text_pair_column))
    return mapped


def require_columns(frame: pd.DataFrame, cfg: DataConfig) -> None:
    """Fail with the file and the params key when a mapped column is absent."""
    for key, column in mapped_columns(cfg):
        if column not in frame.columns:
            source = frame["source_file"].iloc[0] if len(frame) else "data"
            found = ", ".join(c for c in frame.columns if c not in ("source_file", "source_row"))
            raise DataError(f"{source}: column '{column}' ({key}) not found; columns are: {found}")


def require_flat_values(frame: pd.DataFrame, cfg: DataConfig) -> None:
    """Fail on the first nested value (a Parquet struct or list, a JSON object) in a text or label
    column, with its file, row and params key: str() of it would train on "{'body': ...}"."""
    for key, column in mapped_columns(cfg):
        if column not in frame.columns:
            continue
        nested = frame[column].map(lambda v: isinstance(v, dict | list | tuple) or hasattr(v, "__array__"))
        if nested.any():
            row = frame.loc[nested.idxmax()]
            kind = type(row[column]).__name__
            raise DataError(
                f"{row['source_file']}:{row['source_row']}: column '{column}' ({key}) holds a nested value "
                f"({kind}), not text; flatten it or point {key} at a text field"
            )


def text_columns(frame: pd.DataFrame, cfg: DataConfig) -> dict[str, pd.Series]:
    """The split frame's inputs: `text`, and `text_pair` when `data.text_pair_column` is set (stripped)."""
    columns = {"text": frame[cfg.text_column].astype(str).str.strip()}
    if cfg.text_pair_column is not None:
        columns["text_pair"] = frame[cfg.text_pair_column].astype(str).str.strip()
    return columns


def _normalise(frame: pd.DataFrame, cfg: DataConfig, label2id: dict[str, int]) -> pd.DataFrame:
    require_columns(frame, cfg)
    labels = frame[cfg.label_column].map(as_label)
    return pd.DataFrame(
        {
            **text_columns(frame, cfg),
            "label": labels,
            "label_id": labels.map(lambda name: label2id.get(name, -1)).astype("int64"),
            "source_file": frame["source_file"],
            "source_row": frame["source_row"].astype("int64"),
        }
    ).reset_index(drop=True)


def split_frames(frames: dict[str, pd.DataFrame], cfg: DataConfig, root: Path = Path()) -> Splits:
    """Map columns and labels, take the test split (file or fraction), carve validation from train."""
    labels_path = root / cfg.labels_path if cfg.labels_path else None
    require_columns(frames["train"], cfg)
    names = label_names(frames["train"][cfg.label_column], labels_path)
    label2id = {name: i for i, name in enumerate(names)}
    pool = _normalise(frames["train"], cfg, label2id)
    test = _normalise(frames["test"], cfg, label2id) if "test" in frames else None
    return split_rows(pool, test, cfg, names)
