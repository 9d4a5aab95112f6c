"""Sentences to encoder inputs: the words of each sentence (`is_split_into_words`) to token ids,
and its tags aligned to them: the first sub-token of each word carries the word's tag id, the
other sub-tokens and the special tokens -100 (ignored by the loss and by scoring).

`max_length` comes from params or the given percentile of train token lengths (capped by the
model); words past it lose their tag in training (scoring predicts O for them) and the
sentences that lost words are counted. The content key names what the result depends on, for
the shared on-disk cache (`tasks.tokenization.cache`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tasks.core.config import TokenizeConfig
from tasks.core.errors import RefineryError
from tasks.core.hashing import code_version
from tasks.data.splitting import Splits
from tasks.models.tokenizers import load_tokenizer, model_max_length

if TYPE_CHECKING:  # the libraries load when sentences are tokenized: a cache hit only computes the key
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

IGNORED = -100  # the label of sub-tokens that carry no tag (the loss's ignore_index)
TRUNCATED = "truncated"  # a column of each tokenized split: whether the sentence lost words


def _rows(frame: pd.DataFrame) -> list[str]:
    """Each sentence as one line: its tokens and tags."""
    return [
        json.dumps([list(map(str, tokens)), list(map(str, tags))]) + "\n"
        for tokens, tags in zip(frame["tokens"], frame["tags"], strict=True)
    ]


def content_key(splits: Splits, cfg: TokenizeConfig) -> str:
    """What the tokenized splits depend on besides the tokenizer: the sentences and their tags, the
    tag names, the max_length rule and this module's code."""
    digest = hashlib.sha256()
    for name, frame in splits.frames().items():
        digest.update(name.encode())
        for row in _rows(frame):
            digest.update(row.encode())
    digest.update(json.dumps(splits.labels).encode())
    digest.update(json.dumps({"max_length": cfg.max_length, "percentile": cfg.length_percentile}).encode())
    digest.update(code_version(Path(__file__)).encode())
    return digest.hexdigest()


def align_labels(word_ids: list[int | None], tag_ids: list[int]) -> list[int]:
    """One label per sub-token: the word's tag id on its first sub-token, -100 elsewhere."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORED if word is None or word == previous else tag_ids[word])
        previous = word
    return labels


def tag_ids(frame: pd.DataFrame, labels: list[str]) -> list[list[int]]:
    """Each sentence's tags as ids; a tag outside `labels` stops with its file and row."""
    ids = {name: i for i, name in enumerate(labels)}
    out = []
    for tags, source, row in zip(frame["tags"], frame["source_file"], frame["source_row"], strict=True):
        unknown = [tag for tag in tags if tag not in ids]
        if unknown:
            raise RefineryError(
                f"{source}:{row}: tag {unknown[0]!r} is not among the run's tags; validate again"
            )
        out.append([ids[tag] for tag in tags])
    return out


def derive_max_length(
    words: list[list[str]], tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig, cap: int
) -> int:
    """`cfg.max_length` if set, else the given percentile of the train sentences' token lengths;
    capped by the model."""
    if cfg.max_length is not None:
        return min(cfg.max_length, cap)
    lengths = [len(ids) for ids in tokenizer(words, is_split_into_words=True, truncation=False)["input_ids"]]
    return int(min(cap, max(8, int(np.ceil(np.percentile(lengths, cfg.length_percentile))))))


def tokenize_splits(
    splits: Splits, tokenizer: PreTrainedTokenizerBase, max_length: int, cfg: TokenizeConfig
) -> DatasetDict:
    """Batched `datasets.map` over every split: input_ids, attention_mask (token_type_ids), aligned
    `labels` and whether the sentence lost words at max_length."""
    from datasets import Dataset, DatasetDict

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        word_ids = [encoded.word_ids(i) for i in range(len(batch["tokens"]))]
        encoded["labels"] = [align_labels(w, t) for w, t in zip(word_ids, batch["tag_ids"], strict=True)]
        encoded[TRUNCATED] = [
            max((w for w in words if w is not None), default=-1) + 1 < len(tokens)
            for words, tokens in zip(word_ids, batch["tokens"], strict=True)
        ]
        return dict(encoded)

    out = {}
    for name, frame in splits.frames().items():
        rows = pd.DataFrame(
            {"tokens": [list(map(str, t)) for t in frame["tokens"]], "tag_ids": tag_ids(frame, splits.labels)}
        )
        digest = hashlib.sha256(
            f"{name}|{tokenizer.name_or_path}|{max_length}|{code_version(Path(__file__))}".encode()
        )
        for row in _rows(frame):
            digest.update(row.encode())
        out[name] = Dataset.from_pandas(rows, preserve_index=False).map(
            encode,
            batched=True,
            batch_size=cfg.batch_size,
            num_proc=cfg.num_proc,
            remove_columns=["tokens", "tag_ids"],
            desc=f"tokenize {name}",
            new_fingerprint=digest.hexdigest()[
                :32
            ],  # from the content: `datasets` would pickle the tokenizer
        )
    return DatasetDict(out)


def tokenize(splits: Splits, model_dir: Path, cfg: TokenizeConfig) -> tuple[DatasetDict, dict[str, Any]]:
    """Every split tokenized with the rule's max_length; the facts recorded with the cache entry."""
    tokenizer = load_tokenizer(model_dir)
    words = [list(map(str, tokens)) for tokens in splits.train["tokens"]]
    max_length = derive_max_length(words, tokenizer, cfg, model_max_length(tokenizer, model_dir))
    dataset = tokenize_splits(splits, tokenizer, max_length, cfg)
    truncated = sum(int(np.sum(dataset[name][TRUNCATED])) for name in dataset)
    return dataset.remove_columns(TRUNCATED), {"max_length": max_length, "truncated_examples": truncated}
