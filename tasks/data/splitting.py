"""Splitting examples into train / validation / test, and the split files steps hand to each other.

Every task type's splits are frames with its own columns plus `label` (what stratification uses),
`source_file` and `source_row`; the split rules are the same for all of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import DataError
from tasks.core.layout import RunLayout

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    """Train / validation / test frames (columns per task type) and the label names in id order."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


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
    from sklearn.model_selection import train_test_split  # ~1 s to import: only the validate step splits

    rest, part = train_test_split(frame, test_size=n_part, random_state=seed, stratify=stratify)
    return rest.sort_index(), part.sort_index()


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


INPUT_COLUMNS = ("text", "prompt")  # a split's model input: a classifier's text, a causal LM's prompt
PAIR_COLUMN = "text_pair"  # the second text of a pair: part of the model input too


def row_hashes(frame: pd.DataFrame) -> list[str]:
    """A short SHA-256 of each row's model input, stripped: the same example in any file or run has
    the same hash (what a champion was trained on can be checked against a later test split). A text
    pair is one input: both texts are hashed together (the same first text with another second text
    is another example)."""
    column = next((c for c in INPUT_COLUMNS if c in frame.columns), None)
    if column is None:
        return []
    if column == "text" and PAIR_COLUMN in frame.columns:
        inputs = [
            json.dumps([str(a).strip(), str(b).strip()], ensure_ascii=False)
            for a, b in zip(frame[column], frame[PAIR_COLUMN], strict=True)
        ]
    else:
        inputs = [str(v).strip() for v in frame[column]]
    return [hashlib.sha256(text.encode()).hexdigest()[:20] for text in inputs]


def write_splits(splits: Splits, layout: RunLayout) -> None:
    """Save the splits as Parquet, the label list as JSON and the hashes of the rows trained on
    (train and validation) as text (the validate step's outputs)."""
    layout.splits_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.frames().items():
        frame.to_parquet(layout.splits_dir / f"{name}.parquet", index=False)
    (layout.splits_dir / "labels.json").write_text(json.dumps(splits.labels, indent=1), encoding="utf-8")
    learned = sorted(set(row_hashes(splits.train)) | set(row_hashes(splits.validation)))
    layout.train_rows.write_text("".join(f"{h}\n" for h in learned), encoding="utf-8")


def read_splits(layout: RunLayout) -> Splits:
    """Load what `write_splits` saved."""
    frames = {name: pd.read_parquet(layout.splits_dir / f"{name}.parquet") for name in SPLITS}
    labels = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    return Splits(labels=labels, **frames)
