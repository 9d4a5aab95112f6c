"""What a new data file looks like: which columns hold the text and the label, by name or by shape.

`refinery init` proposes columns from these guesses; where two columns fit equally well (or none
does), it asks, or says which option names the column. Nothing here assumes a particular dataset.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TEXT_NAMES = ("text", "sentence", "content", "body", "review", "question", "utterance", "message",
              "query", "document", "comment", "prompt", "input")  # fmt: skip
LABEL_NAMES = ("label", "labels", "category", "intent", "class", "target", "sentiment", "topic",
               "tag", "y", "output")  # fmt: skip
_SNIFFED = ",;\t|"


@dataclass(frozen=True)
class ColumnGuess:
    """The proposed column and the others that would fit as well (empty when the choice is clear)."""

    column: str | None
    rivals: tuple[str, ...]
    why: str

    @property
    def certain(self) -> bool:
        return self.column is not None and not self.rivals


def sniff_delimiter(path: Path) -> str:
    """The field separator of a delimited file (`,` when the first lines do not tell)."""
    sample = path.read_text(encoding="utf-8", errors="replace")[:20_000]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_SNIFFED).delimiter
    except csv.Error:
        return ","


def _data_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("source_file", "source_row")]


def _strings(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].dropna().map(str)


def _by_name(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower().strip(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def guess_text_column(frame: pd.DataFrame) -> ColumnGuess:
    """A column named like text, else the one with the longest, mostly distinct values."""
    columns = _data_columns(frame)
    named = _by_name(columns, TEXT_NAMES)
    if named is not None:
        return ColumnGuess(named, (), "named like a text column")
    scores: dict[str, float] = {}
    for column in columns:
        values = _strings(frame, column)
        if len(values) == 0 or values.str.fullmatch(r"-?\d+(\.\d+)?").mean() > 0.5:
            continue  # numbers are ids or labels, not texts
        if values.nunique() / len(values) >= 0.5:
            scores[column] = float(values.str.len().mean())
    if not scores:
        return ColumnGuess(None, (), "no column of mostly distinct strings")
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    close = tuple(c for c in ranked[1:] if scores[c] >= 0.5 * scores[ranked[0]])
    return ColumnGuess(
        ranked[0], close, f"longest distinct strings ({scores[ranked[0]]:.0f} chars on average)"
    )


def guess_label_column(frame: pd.DataFrame, text: str | None) -> ColumnGuess:
    """A column named like a label, else the one column with few distinct values repeated often."""
    columns = [c for c in _data_columns(frame) if c != text]
    named = _by_name(columns, LABEL_NAMES)
    if named is not None:
        return ColumnGuess(named, (), "named like a label column")
    rows = max(len(frame), 1)
    fits = [c for c in columns if 2 <= _strings(frame, c).nunique() <= max(2, min(1000, rows // 2))]
    if not fits:
        return ColumnGuess(None, (), "no column with a few values repeated across rows")
    return ColumnGuess(fits[0], tuple(fits[1:]), "few distinct values, each repeated")
