"""Batch scoring: a registered model labels every text (or text pair) of a CSV/TSV/JSONL/Parquet file.

The output keeps the input's columns as read and adds the model's answer in its task's shape:
`label` and `confidence` (a classifier: the predicted label and its softmax score), `labels` and
`scores` (multi-label: every label over its threshold), `prediction` (regression), `entities`
(token classification: typed spans with character offsets). List and span columns are written as
JSON in CSV/TSV files and as nested values in JSONL/Parquet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from tqdm.auto import tqdm

from tasks.core.errors import DataError, RefineryError
from tasks.data.reading import detect_format, read_table

_READER_COLUMNS = ("source_file", "source_row")  # added by read_table, not the user's
# what each kind of model adds to the input's columns
OUTPUTS = {
    "text-classification": ("label", "confidence"),
    "single_label": ("label", "confidence"),
    "multi_label": ("labels", "scores"),
    "regression": ("prediction",),
    "token_classification": ("entities",),
}
OUTPUT_COLUMNS = OUTPUTS["text-classification"]

# a batch of rows (`text`, and `text_pair` for a model of pairs) in, the output columns out
Scorer = Callable[[pd.DataFrame], pd.DataFrame]
# the same rows in, each one's length in the model's tokens out
Lengths = Callable[[pd.DataFrame], np.ndarray]
LENGTH_CHUNK = 8192  # rows tokenized at a time when counting tokens: a large file's ids are never all held


@dataclass(frozen=True)
class LoadedScorer:
    """A registered model ready to score: its kind, whether it reads pairs, and the scorer."""

    kind: str
    pair: bool
    score: Scorer
    lengths: Lengths | None = None  # None: rows are ordered by their characters

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS[self.kind]


class PredictionError(RefineryError):
    """The model cannot be loaded or the input cannot be scored."""


@dataclass(frozen=True)
class PredictionResult:
    """What was scored, by which model, and where the predictions went."""

    model_uri: str
    rows: int
    output: Path
    summary: str  # the most frequent labels, or the spread of the predicted values

    def message(self) -> str:
        """One line for the terminal."""
        return f"scored {self.rows} rows with {self.model_uri} -> {self.output} ({self.summary})"


def read_texts(
    path: Path, text_column: str, pair_column: str | None = None, outputs: tuple[str, ...] = OUTPUT_COLUMNS
) -> pd.DataFrame:
    """The input file as read, checked for the text (and pair) column and for rows without text."""
    frame = read_table(path)
    found = ", ".join(c for c in frame.columns if c not in _READER_COLUMNS)
    columns = [
        (text_column, "--text-column"),
        *([(pair_column, "--text-pair-column")] if pair_column else []),
    ]
    for column, option in columns:
        if column not in frame.columns:
            raise DataError(f"{path}: column '{column}' ({option}) not found; columns are: {found}")
    taken = [c for c in outputs if c in frame.columns]
    if taken:
        raise DataError(
            f"{path}: already has column(s) {', '.join(taken)}, which the predictions would replace"
        )
    for column, _ in columns:
        missing = frame.loc[frame[column].isna(), "source_row"]
        if len(missing):
            raise DataError(
                f"{path}: row {missing.iloc[0]}: no text in column '{column}' ({len(missing)} such rows)"
            )
    return frame


def _load_failed(model_uri: str, err: MlflowException) -> PredictionError:
    first_line = str(err.message).strip().splitlines()[0] if str(err.message).strip() else err.error_code
    return PredictionError(f"cannot load {model_uri}: {first_line}")


def load_scorer(model_uri: str) -> LoadedScorer:
    """The registered model as a scorer: a transformers text-classification pipeline (truncating
    long texts), or a served encoder (pyfunc) of text pairs, multi-label, regression or tokens."""
    import mlflow

    try:
        flavors = mlflow.models.get_model_info(model_uri).flavors
    except MlflowException as err:
        raise _load_failed(model_uri, err) from None
    if "transformers" in flavors:
        return _pipeline_scorer(model_uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as err:
        raise _load_failed(model_uri, err) from None
    kind = (model.model_config or {}).get("kind")
    if kind not in OUTPUTS:
        raise PredictionError(
            f"{model_uri}: not a model Refinery can score a table with (no served task kind)"
        )
    inputs = model.metadata.get_input_schema()
    pair = inputs is not None and "text_pair" in inputs.input_names()

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        out = model.predict(batch)
        return out.rename(columns={"score": "confidence"}) if kind == "single_label" else out

    try:
        served = model.unwrap_python_model()  # the served encoder, with the tokenizer it scores with
    except MlflowException:
        served = None
    tokenizer = getattr(served, "tokenizer", None)
    max_length = (getattr(served, "config", None) or {}).get("max_length")
    lengths = None if tokenizer is None else _token_lengths(tokenizer, max_length)
    return LoadedScorer(str(kind), pair, score, lengths)


def _pipeline_scorer(model_uri: str) -> LoadedScorer:
    import mlflow.transformers

    try:
        pipeline = mlflow.transformers.load_model(model_uri, return_type="pipeline")
    except MlflowException as err:
        raise _load_failed(model_uri, err) from None
    if getattr(pipeline, "task", None) != "text-classification":
        raise PredictionError(f"{model_uri}: not a text-classification model (task {pipeline.task!r})")

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        texts = batch["text"].tolist()
        outputs: list[dict[str, Any]] = pipeline(texts, truncation=True, batch_size=len(texts))
        return pd.DataFrame(
            {"label": [str(o["label"]) for o in outputs], "confidence": [float(o["score"]) for o in outputs]}
        )

    return LoadedScorer("text-classification", False, score, _token_lengths(pipeline.tokenizer, None))


def token_lengths(
    tokenizer: Any, texts: list[str], pairs: list[str] | None = None, max_length: int | None = None
) -> np.ndarray:
    """How many tokens the model reads of each text (pair), truncated as it scores them."""
    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), LENGTH_CHUNK):
        stop = start + LENGTH_CHUNK
        encoded = tokenizer(
            texts[start:stop],
            pairs[start:stop] if pairs is not None else None,
            truncation=True,
            max_length=max_length,
        )
        lengths[start : start + len(encoded["input_ids"])] = [len(ids) for ids in encoded["input_ids"]]
    return lengths


def _token_lengths(tokenizer: Any, max_length: int | None) -> Lengths:
    def lengths(rows: pd.DataFrame) -> np.ndarray:
        pairs = rows["text_pair"].tolist() if "text_pair" in rows.columns else None
        return token_lengths(tokenizer, rows["text"].tolist(), pairs, max_length)

    return lengths


def row_lengths(scorer: LoadedScorer, inputs: pd.DataFrame) -> np.ndarray:
    """Each row's length as the model sees it: its tokens when the scorer counts them, else characters.

    Characters sort tokens loosely: on BANKING77's test texts, batches of 64 in character order still
    pad to 1.32x the real tokens, in token order to 1.07x."""
    if scorer.lengths is not None:
        return np.asarray(scorer.lengths(inputs), dtype=np.int64)
    chars = inputs["text"].str.len()
    if "text_pair" in inputs.columns:
        chars = chars + inputs["text_pair"].str.len()
    return chars.to_numpy()


def predict_frame(
    scorer: LoadedScorer,
    frame: pd.DataFrame,
    text_column: str,
    batch_size: int,
    progress: bool = True,
    pair_column: str | None = None,
) -> pd.DataFrame:
    """`frame`'s own columns plus the model's output columns, scored `batch_size` rows at a time.

    Rows are scored longest first in the model's tokens (`row_lengths`), so each batch pads to
    similar lengths (the models pad per batch), and the answers are put back in the input's order."""
    inputs = pd.DataFrame({"text": frame[text_column].astype(str).to_numpy()})
    if pair_column is not None:
        inputs["text_pair"] = frame[pair_column].astype(str).to_numpy()
    order = np.argsort(-row_lengths(scorer, inputs), kind="stable")
    parts: list[pd.DataFrame] = []
    with tqdm(total=len(inputs), unit="texts", desc="scoring", disable=not progress) as bar:
        for start in range(0, len(inputs), batch_size):
            batch = inputs.iloc[order[start : start + batch_size]].reset_index(drop=True)
            parts.append(scorer.score(batch)[list(scorer.outputs)])
            bar.update(len(batch))
    scored = frame.drop(columns=[c for c in _READER_COLUMNS if c in frame.columns]).reset_index(drop=True)
    if not parts:
        return pd.concat([scored, pd.DataFrame(columns=list(scorer.outputs))], axis=1)
    answers = pd.concat(parts, ignore_index=True)
    answers.index = order  # each answer back at its row
    return pd.concat([scored, answers.sort_index()], axis=1)


def summarise(scored: pd.DataFrame, kind: str) -> str:
    """The run in a few words: the most frequent labels, the predicted values' spread, entity counts."""
    if kind == "regression":
        values = scored["prediction"].astype(float)
        return f"predictions: mean {values.mean():.4g}, min {values.min():.4g}, max {values.max():.4g}"
    if kind == "token_classification":
        types = pd.Series([e["type"] for spans in scored["entities"] for e in spans], dtype=object)
        return _most_frequent(types, f"{len(types)} entities")
    if kind == "multi_label":
        return _most_frequent(pd.Series([label for row in scored["labels"] for label in row], dtype=object))
    return _most_frequent(scored["label"])


def _most_frequent(values: pd.Series, prefix: str = "") -> str:
    top = ", ".join(f"{label} {count}" for label, count in list(values.value_counts().items())[:5])
    return f"{prefix}{'; ' if prefix else ''}most frequent: {top or '-'}"


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
    if fmt in ("csv", "tsv"):  # lists and spans as JSON, which any reader can parse back
        nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list | dict)).any()]
        frame = frame.assign(**{c: frame[c].map(json.dumps) for c in nested})
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
    pair_column: str | None = None,
) -> PredictionResult:
    """Score every row (text, or text pair) of `input_path` with `model_uri` and write `output_path`."""
    output_format(output_path)  # a bad output name fails before the model loads
    read_texts(input_path, text_column, pair_column)  # a bad file fails before the model loads too
    scorer = load_scorer(model_uri)
    if scorer.pair and pair_column is None:
        raise DataError(
            f"{model_uri} reads text pairs: name the second text's column with --text-pair-column"
        )
    if pair_column is not None and not scorer.pair:
        raise DataError(f"{model_uri} reads one text per row: drop --text-pair-column")
    frame = read_texts(input_path, text_column, pair_column, scorer.outputs)
    scored = predict_frame(scorer, frame, text_column, batch_size, progress, pair_column)
    write_table(scored, output_path)
    return PredictionResult(model_uri, len(scored), output_path, summarise(scored, scorer.kind))
