"""Batch scoring: a registered model labels every text of a CSV/TSV/JSONL/Parquet file.

The output keeps the input's columns as read and adds `label` (the predicted label name) and
`confidence` (the softmax score of that label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from tqdm.auto import tqdm

from tasks.core.errors import DataError, RefineryError
from tasks.data.reading import detect_format, read_table

OUTPUT_COLUMNS = ("label", "confidence")
_READER_COLUMNS = ("source_file", "source_row")  # added by read_table, not the user's

# texts in, one {"label": ..., "score": ...} per text out
Scorer = Callable[[list[str]], list[dict[str, Any]]]


class PredictionError(RefineryError):
    """The model cannot be loaded or the input cannot be scored."""


@dataclass(frozen=True)
class PredictionResult:
    """What was scored, by which model, and where the predictions went."""

    model_uri: str
    rows: int
    output: Path
    label_counts: dict[str, int]

    def message(self) -> str:
        """One line for the terminal."""
        top = ", ".join(f"{label} {count}" for label, count in list(self.label_counts.items())[:5])
        return f"scored {self.rows} rows with {self.model_uri} -> {self.output} (most frequent: {top or '-'})"


def read_texts(path: Path, text_column: str) -> pd.DataFrame:
    """The input file as read, checked for the text column and for rows without text."""
    frame = read_table(path)
    if text_column not in frame.columns:
        found = ", ".join(c for c in frame.columns if c not in _READER_COLUMNS)
        raise DataError(f"{path}: column '{text_column}' (--text-column) not found; columns are: {found}")
    taken = [c for c in OUTPUT_COLUMNS if c in frame.columns]
    if taken:
        raise DataError(
            f"{path}: already has column(s) {', '.join(taken)}, which the predictions would replace"
        )
    missing = frame.loc[frame[text_column].isna(), "source_row"]
    if len(missing):
        raise DataError(
            f"{path}: row {missing.iloc[0]}: no text in column '{text_column}' ({len(missing)} such rows)"
        )
    return frame


def load_scorer(model_uri: str) -> Scorer:
    """A text-classification pipeline from the model's transformers flavor, truncating long texts."""
    import mlflow.transformers

    try:
        pipeline = mlflow.transformers.load_model(model_uri, return_type="pipeline")
    except MlflowException as err:
        first_line = str(err.message).strip().splitlines()[0] if str(err.message).strip() else err.error_code
        raise PredictionError(f"cannot load {model_uri}: {first_line}") from None
    if getattr(pipeline, "task", None) != "text-classification":
        raise PredictionError(f"{model_uri}: not a text-classification model (task {pipeline.task!r})")

    def score(texts: list[str]) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = pipeline(texts, truncation=True, batch_size=len(texts))
        return outputs

    return score


def predict_frame(
    score: Scorer, frame: pd.DataFrame, text_column: str, batch_size: int, progress: bool = True
) -> pd.DataFrame:
    """`frame`'s own columns plus `label` and `confidence`, scored `batch_size` texts at a time."""
    texts = frame[text_column].astype(str).tolist()
    labels: list[str] = []
    confidences: list[float] = []
    with tqdm(total=len(texts), unit="texts", desc="scoring", disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            outputs = score(batch)
            labels += [str(out["label"]) for out in outputs]
            confidences += [float(out["score"]) for out in outputs]
            bar.update(len(batch))
    scored = frame.drop(columns=[c for c in _READER_COLUMNS if c in frame.columns]).reset_index(drop=True)
    return scored.assign(label=labels, confidence=confidences)


def output_format(path: Path) -> str:
    """The format to write, from the extension of `path`."""
    try:
        return detect_format(path, "auto")
    except DataError:
        raise DataError(
            f"{path}: cannot tell the output format from '{path.suffix}'; use .csv, .tsv, .jsonl or .parquet"
        ) from None


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` in the format of `path`'s extension (csv, tsv, jsonl/json, parquet)."""
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif fmt == "json":  # an array of records, as such files are read
        frame.to_json(path, orient="records", force_ascii=False, indent=1)
    else:
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")


def predict_file(
    model_uri: str,
    input_path: Path,
    output_path: Path,
    text_column: str = "text",
    batch_size: int = 64,
    progress: bool = True,
) -> PredictionResult:
    """Score every row of `input_path` with `model_uri` and write `output_path`."""
    output_format(output_path)  # a bad output name fails before the model loads
    frame = read_texts(input_path, text_column)
    scored = predict_frame(load_scorer(model_uri), frame, text_column, batch_size, progress)
    write_table(scored, output_path)
    counts = {str(k): int(v) for k, v in scored["label"].value_counts().items()}
    return PredictionResult(model_uri, len(scored), output_path, counts)
