"""`refinery predict`'s outputs for every kind of model: the columns added, nested answers written as
JSON in CSV and as nested values in JSONL, and the one-line summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.cli import prediction
from tasks.cli.prediction import LoadedScorer, predict_frame, read_texts, summarise, write_table
from tasks.core.errors import DataError


def _scorer(kind: str, pair: bool = False) -> LoadedScorer:
    """A scorer with a fixed rule per kind (the real ones are served encoders: tests/integration)."""

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        n = batch["text"].str.len()
        if kind == "regression":
            return pd.DataFrame({"prediction": n.astype(float)})
        if kind == "multi_label":
            return pd.DataFrame(
                {"labels": [["a", "b"] if v > 3 else [] for v in n], "scores": [[0.9]] * len(n)}
            )
        spans = [[{"type": "MONEY", "text": t[:2], "start": 0, "end": 2}] for t in batch["text"]]
        return pd.DataFrame({"entities": spans})

    return LoadedScorer(kind, pair, score)


def test_each_kind_adds_its_columns_in_input_order_batch_after_batch() -> None:
    frame = pd.DataFrame({"body": ["abcd", "ab", "abcdef"], "id": [7, 8, 9], "source_row": [1, 2, 3]})
    scored = predict_frame(_scorer("regression"), frame, "body", batch_size=2, progress=False)
    assert list(scored.columns) == ["body", "id", "prediction"]  # the reader's columns dropped
    assert scored["prediction"].tolist() == [4.0, 2.0, 6.0]
    labels = predict_frame(_scorer("multi_label"), frame, "body", batch_size=1, progress=False)
    assert labels["labels"].tolist() == [["a", "b"], [], ["a", "b"]]
    assert summarise(labels, "multi_label") == "most frequent: a 2, b 2"
    assert summarise(scored, "regression") == "predictions: mean 4, min 2, max 6"
    entities = predict_frame(_scorer("token_classification"), frame, "body", batch_size=2, progress=False)
    assert summarise(entities, "token_classification") == "3 entities; most frequent: MONEY 3"


def test_nested_answers_are_json_in_csv_and_nested_in_jsonl(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["x"], "labels": [["a", "b"]], "entities": [[{"type": "T", "start": 0}]]})
    write_table(frame, tmp_path / "out.csv")
    back = pd.read_csv(tmp_path / "out.csv")
    assert json.loads(back["labels"][0]) == ["a", "b"]
    assert json.loads(back["entities"][0]) == [{"type": "T", "start": 0}]
    write_table(frame, tmp_path / "out.jsonl")
    record = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert record["labels"] == ["a", "b"] and record["entities"][0]["type"] == "T"


def test_a_pair_column_is_checked_like_the_text_column(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"q1": ["a", "b"], "q2": ["c", None]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'q3' \(--text-pair-column\) not found"):
        read_texts(path, "q1", "q3")
    with pytest.raises(DataError, match=r"row 2: no text in column 'q2'"):
        read_texts(path, "q1", "q2")
    taken = tmp_path / "taken.csv"
    pd.DataFrame({"q1": ["a"], "prediction": [1.0]}).to_csv(taken, index=False)
    with pytest.raises(DataError, match=r"already has column\(s\) prediction"):
        read_texts(taken, "q1", None, ("prediction",))


def test_rows_are_scored_longest_first_and_answered_in_input_order() -> None:
    seen: list[list[str]] = []

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        seen.append(batch["text"].tolist())
        return pd.DataFrame({"prediction": batch["text"].str.len().astype(float)})

    frame = pd.DataFrame({"text": ["bb", "a", "dddd", "ccc", "eeeee"]})
    scored = predict_frame(
        LoadedScorer("regression", False, score), frame, "text", batch_size=2, progress=False
    )
    assert seen == [["eeeee", "dddd"], ["ccc", "bb"], ["a"]]  # similar lengths share a batch
    assert scored["prediction"].tolist() == [2.0, 1.0, 4.0, 3.0, 5.0]


def test_rows_are_ordered_by_the_tokens_the_scorer_counts_not_by_characters() -> None:
    seen: list[list[str]] = []

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        seen.append(batch["text"].tolist())
        return pd.DataFrame({"prediction": batch["text"].str.split().str.len().astype(float)})

    def words(rows: pd.DataFrame) -> np.ndarray:  # a word a token: the long word is one token
        return rows["text"].str.split().str.len().to_numpy()

    frame = pd.DataFrame({"text": ["a b c", "extraordinarily", "d e", "f g h i"]})
    scorer = LoadedScorer("regression", False, score, words)
    scored = predict_frame(scorer, frame, "text", batch_size=2, progress=False)
    assert seen == [["f g h i", "a b c"], ["d e", "extraordinarily"]]  # by characters it led
    assert scored["prediction"].tolist() == [3.0, 1.0, 2.0, 4.0]


def test_token_lengths_are_those_the_model_reads_truncated_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import BertTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "card", "lost", "my"]))
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), model_max_length=6)
    monkeypatch.setattr(prediction, "LENGTH_CHUNK", 2)
    texts = ["card", "my card lost", "lost " * 10, "my"]
    assert prediction.token_lengths(tokenizer, texts).tolist() == [3, 5, 6, 3]  # [CLS] ... [SEP], cut at 6
    assert prediction.token_lengths(tokenizer, texts, ["card"] * 4, max_length=4).tolist() == [4, 4, 4, 4]
