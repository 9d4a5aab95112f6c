"""Tokenization: max_length from params or data, dynamic padding left to the collator, content-keyed cache."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict, load_from_disk

from tasks.core.config import Params, TokenizeConfig
from tasks.data.splitting import Splits
from tasks.models.tokenizers import load_tokenizer
from tasks.steps.tokenization import entry_key
from tasks.steps.tokenization import tokenize_cached as tokenize_with
from tasks.task_types import TASK_TYPES
from tasks.task_types.classification.tokenization import derive_max_length
from tasks.tokenization.cache import STAGING, publish_cached
from tests.fixtures import build_tiny_classifier

CLASSIFIER = TASK_TYPES["sequence_classification"]


def tokenize_cached(splits: Splits, model_dir: Path, cfg: TokenizeConfig) -> tuple[Path, dict[str, Any]]:
    return tokenize_with(CLASSIFIER, splits, model_dir, Params(tokenize=cfg))


def cache_key(splits: Splits, model_dir: Path, cfg: TokenizeConfig) -> str:
    return entry_key(CLASSIFIER, splits, model_dir, Params(tokenize=cfg))


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


def test_runs_publishing_the_same_key_at_once_leave_one_complete_entry(
    model_dir: Path, tmp_path: Path
) -> None:
    def build() -> tuple[DatasetDict, dict[str, Any]]:
        return DatasetDict({"train": Dataset.from_dict({"input_ids": [[1, 2, 3]]})}), {"max_length": 8}

    def build_while_another_run_publishes() -> tuple[DatasetDict, dict[str, Any]]:
        _, other_meta = publish_cached(tmp_path, "k", model_dir, build)  # it finishes first
        assert other_meta["cache_hit"] is False
        return build()

    path, meta = publish_cached(tmp_path, "k", model_dir, build_while_another_run_publishes)
    assert path == tmp_path / "k" and meta["cache_hit"] is False and meta["rows"] == {"train": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # the loser's staging copy is gone
    assert load_from_disk(str(path))["train"]["input_ids"] == [[1, 2, 3]]
    assert publish_cached(tmp_path, "k", model_dir, build)[1]["cache_hit"] is True


def test_two_runs_building_one_key_concurrently_both_succeed(model_dir: Path, tmp_path: Path) -> None:
    import threading

    both_built = threading.Barrier(2)
    rows = {"input_ids": [[i, i + 1, i + 2] for i in range(20_000)]}

    def build() -> tuple[DatasetDict, dict[str, Any]]:
        both_built.wait(timeout=60)  # the two saves start together, as two served deployment runs did
        return DatasetDict({"train": Dataset.from_dict(rows), "test": Dataset.from_dict(rows)}), {}

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(publish_cached(tmp_path, "k", model_dir, build)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2 and all(path == tmp_path / "k" for path, _ in results)
    assert [p.name for p in tmp_path.iterdir()] == ["k"]
    assert load_from_disk(str(tmp_path / "k"))["test"].num_rows == 20_000


def test_only_texts_longer_than_max_length_count_as_truncated(model_dir: Path, tmp_path: Path) -> None:
    longest = max(len(ids) for ids in load_tokenizer(model_dir)(TEXTS)["input_ids"])
    fits = TokenizeConfig(cache_dir=str(tmp_path / "a"), max_length=longest)
    _, meta = tokenize_cached(_splits(TEXTS), model_dir, fits)
    assert meta["truncated_examples"] == 0  # the longest text has exactly max_length tokens: not cut
    cut = TokenizeConfig(cache_dir=str(tmp_path / "b"), max_length=longest - 1)
    path, meta = tokenize_cached(_splits(TEXTS), model_dir, cut)
    assert meta["truncated_examples"] == 1  # "exchange rate ...": in train only (validation/test: first 2-3)
    assert "truncated" not in load_from_disk(str(path))["train"].column_names


def test_cache_key_changes_with_the_tokenizers_and_transformers_versions(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import version

    from tasks.tokenization import cache

    cfg = TokenizeConfig()
    base = cache_key(_splits(TEXTS), model_dir, cfg)
    for library in ("transformers", "tokenizers"):  # read from the installed metadata: no import
        monkeypatch.setattr(
            cache, "version", lambda name, lib=library: "0.0.1" if name == lib else version(name)
        )
        assert cache_key(_splits(TEXTS), model_dir, cfg) != base


def test_staging_folders_of_killed_builds_are_removed_by_the_next_build(
    model_dir: Path, tmp_path: Path
) -> None:
    host = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    killed = tmp_path / f"k0{STAGING}{host}-{dead_pid}-0123abcd"  # its process is gone
    running = tmp_path / f"k1{STAGING}{host}-{os.getpid()}-4567abcd"  # a build in progress: kept
    elsewhere = tmp_path / f"k2{STAGING}other-host-{dead_pid}-89abcdef"  # another machine's: by age
    old = tmp_path / f"k3{STAGING}other-host-{dead_pid}-fedcba98"
    for folder in (killed, running, elsewhere, old):
        (folder / "train").mkdir(parents=True)
        (folder / "train" / "data-00000-of-00001.arrow").write_bytes(b"half")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))

    def build() -> tuple[DatasetDict, dict[str, Any]]:
        return DatasetDict({"train": Dataset.from_dict({"input_ids": [[1, 2]]})}), {}

    publish_cached(tmp_path, "k", model_dir, build)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["k", running.name, elsewhere.name])
