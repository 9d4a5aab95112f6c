"""Sentences as token-classification examples: the fields of each file, the tag names, the splits.

A CoNLL file is read into `tokens` / `tags` columns (tasks/data/reading.py), a JSONL or Parquet
file keeps its own fields (`token_classification.tokens_field` / `tags_field`); both become split
frames with `tokens` and `tags` (lists), `text` (the tokens joined by a space: what duplicates,
leakage and row hashes compare), `label` (the sentence's most frequent entity type, or "O": what
the splits stratify on), `source_file` and `source_row` (a CoNLL sentence's first line).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import DataError
from tasks.core.sections import TokenClassificationConfig
from tasks.data.reading import CONLL_COLUMNS, detect_format
from tasks.data.splitting import Splits, split_rows
from tasks.task_types.classification.records import label_names


def is_conll(frame: pd.DataFrame, data: DataConfig) -> bool:
    """Whether the frame was read from a CoNLL file (its `source_row` is then a line number)."""
    return len(frame) > 0 and detect_format(Path(str(frame["source_file"].iloc[0])), data.format) == "conll"


def field_frames(
    frames: dict[str, pd.DataFrame], data: DataConfig, cfg: TokenClassificationConfig
) -> dict[str, pd.DataFrame]:
    """The frames with a CoNLL file's `tokens` / `tags` columns named as the configured fields."""
    names = dict(zip(CONLL_COLUMNS, (cfg.tokens_field, cfg.tags_field), strict=True))
    return {
        key: frame.rename(columns=names) if is_conll(frame, data) else frame for key, frame in frames.items()
    }


def as_words(value: Any) -> list[Any] | None:
    """A field's value as a list (JSON array, Parquet list, tuple); None when it is not one."""
    if isinstance(value, list | tuple) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1):
        return list(value)
    return None


def dominant_type(tags: list[str]) -> str:
    """The entity type most tags of the sentence carry (ties: alphabetical), "O" when none."""
    kinds = Counter(tag.partition("-")[2] for tag in tags if tag != "O" and "-" in tag)
    return min(kinds, key=lambda kind: (-kinds[kind], kind)) if kinds else "O"


def tag_names(train_tags: list[list[str]], labels_path: Path | None) -> list[str]:
    """Tag names in id order: `labels_path` (a JSON list) as written, else the train tags sorted
    with "O" first."""
    flat = pd.Series([tag for tags in train_tags for tag in tags], dtype=object)
    names = label_names(flat, labels_path)
    if labels_path is None and "O" in names:
        names = ["O", *(name for name in names if name != "O")]
    return names


def require_fields(frame: pd.DataFrame, cfg: TokenClassificationConfig) -> None:
    """Fail with the file and the params key when a field is absent."""
    for key, column in (("token_classification.tokens_field", cfg.tokens_field),
                        ("token_classification.tags_field", cfg.tags_field)):  # fmt: skip
        if column not in frame.columns:
            source = frame["source_file"].iloc[0] if len(frame) else "data"
            raise DataError(f"{source}: field '{column}' ({key}) not found")


def sentence_frame(frame: pd.DataFrame, cfg: TokenClassificationConfig) -> pd.DataFrame:
    """One validated file as split rows: tokens, tags, text, label, source_file, source_row."""
    require_fields(frame, cfg)
    tokens = [[str(t) for t in as_words(v) or []] for v in frame[cfg.tokens_field]]
    tags = [[str(t) for t in as_words(v) or []] for v in frame[cfg.tags_field]]
    return pd.DataFrame(
        {
            "tokens": tokens,
            "tags": tags,
            "text": [" ".join(words) for words in tokens],
            "label": [dominant_type(sentence) for sentence in tags],
            "source_file": frame["source_file"].astype(str).to_numpy(),
            "source_row": frame["source_row"].astype("int64").to_numpy(),
        }
    )


def split_sentences(
    frames: dict[str, pd.DataFrame], data: DataConfig, cfg: TokenClassificationConfig, root: Path = Path()
) -> Splits:
    """Sentences of every file, the tag names, then the shared split rules (stratified by `label`)."""
    frames = field_frames(frames, data, cfg)
    pool = sentence_frame(frames["train"], cfg)
    test = sentence_frame(frames["test"], cfg) if "test" in frames else None
    labels_path = root / data.labels_path if data.labels_path else None
    return split_rows(pool, test, data, tag_names(pool["tags"].tolist(), labels_path))
