"""Tokenization: max_length from params or data, dynamic padding left to the collator, content-keyed cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.config import TokenizeConfig
from tasks.data import Splits
from tasks.tokenization import cache_key, derive_max_length, load_tokenizer, tokenize_cached
from tests.fixtures import build_tiny_classifier


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny"), ["a", "b"])


def _splits(texts: list[str]) -> Splits:
    def frame(rows: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "text": rows,
                "label": ["a"] * len(rows),
                "label_id": [0] * len(rows),
                "source_file": "f.csv",
                "source_row": range(1, len(rows) + 1),
            }
        )

    return Splits(train=frame(texts), validation=frame(texts[:2]), test=frame(texts[:3]), labels=["a", "b"])


TEXTS = ["my card", "where is my new card please", "top up failed", "hi", "exchange rate for cash at the atm"]


def test_max_length_from_params_is_capped_by_the_model(model_dir: Path) -> None:
    tokenizer = load_tokenizer(model_dir)
    assert derive_max_length(TEXTS, tokenizer, TokenizeConfig(max_length=16), cap=64) == 16
    assert derive_max_length(TEXTS, tokenizer, TokenizeConfig(max_length=500), cap=64) == 64


def test_max_length_from_the_data_percentile(model_dir: Path) -> None:
    tokenizer = load_tokenizer(model_dir)
    lengths = sorted(len(ids) for ids in tokenizer(TEXTS)["input_ids"])
    derived = derive_max_length(TEXTS, tokenizer, TokenizeConfig(length_percentile=100.0), cap=64)
    assert derived == max(8, lengths[-1])


def test_sequences_are_not_padded_in_the_dataset(model_dir: Path, tmp_path: Path) -> None:
    path, meta = tokenize_cached(_splits(TEXTS), model_dir, TokenizeConfig(cache_dir=str(tmp_path)))
    from datasets import load_from_disk

    train = load_from_disk(str(path))["train"]
    assert len({len(ids) for ids in train["input_ids"]}) > 1  # dynamic padding happens per batch
    assert train["labels"] == [0] * len(TEXTS)
    assert meta["cache_hit"] is False and meta["rows"] == {"train": 5, "validation": 2, "test": 3}


def test_cache_hit_on_same_inputs_and_miss_on_any_change(model_dir: Path, tmp_path: Path) -> None:
    cfg = TokenizeConfig(cache_dir=str(tmp_path / "cache"))
    first_path, _ = tokenize_cached(_splits(TEXTS), model_dir, cfg)
    again_path, again = tokenize_cached(_splits(TEXTS), model_dir, cfg)
    assert again["cache_hit"] is True and again_path == first_path
    base = cache_key(_splits(TEXTS), model_dir, cfg)
    assert cache_key(_splits([*TEXTS[:-1], "changed text"]), model_dir, cfg) != base
    assert (
        cache_key(_splits(TEXTS), model_dir, TokenizeConfig(cache_dir=cfg.cache_dir, max_length=12)) != base
    )
    other_tokenizer = build_tiny_classifier(tmp_path / "other", ["a", "b"])
    (other_tokenizer / "vocab.txt").write_text(
        (other_tokenizer / "vocab.txt").read_text() + "extra\n", encoding="utf-8"
    )
    assert cache_key(_splits(TEXTS), other_tokenizer, cfg) != base
