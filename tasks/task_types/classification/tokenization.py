"""Encoder inputs: texts (or text pairs) to token ids with the base model's fast tokenizer.

Shared by the task types whose model reads one text or a pair and predicts from it
(classification, regression, multi-label): a split frame holds `text`, optionally `text_pair`
(the second text, cut per `tokenize.truncation`), and the model's target in a column the task
type names (`label_id` for a classifier).

`max_length` comes from params or the given percentile of train token lengths (capped by the
model); padding is left to the collator (dynamic padding per batch). The content key names what
the result depends on, for the shared on-disk cache (`tasks.tokenization.cache`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tasks.core.config import TokenizeConfig
from tasks.core.hashing import code_version
from tasks.data.splitting import Splits
from tasks.models.tokenizers import load_tokenizer, model_max_length

if TYPE_CHECKING:  # the libraries load when texts are tokenized: a cache hit only computes the key
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase


TEXT_PAIR = "text_pair"  # the optional second text of a split frame


def _rows(frame: pd.DataFrame, target_column: str) -> Iterator[str]:
    """Each example as one line of text: target, text and (for pairs) the second text."""
    pairs = frame[TEXT_PAIR] if TEXT_PAIR in frame.columns else [None] * len(frame)
    for target, text, pair in zip(frame[target_column], frame["text"], pairs, strict=True):
        value = target.tolist() if hasattr(target, "tolist") else target
        yield f"{value}\t{text}" + ("" if pair is None else f"\t{pair}") + "\n"


def content_key(splits: Splits, cfg: TokenizeConfig, target_column: str = "label_id") -> str:
    """What the tokenized splits depend on besides the tokenizer: texts (and pairs), targets,
    labels, the max_length and truncation rule and this module's code."""
    digest = hashlib.sha256()
    for name, frame in splits.frames().items():
        digest.update(name.encode())
        for row in _rows(frame, target_column):
            digest.update(row.encode())
    digest.update(json.dumps(splits.labels).encode())
    rule = {"max_length": cfg.max_length, "percentile": cfg.length_percentile, "target": target_column}
    if any(TEXT_PAIR in frame.columns for frame in splits.frames().values()):
        rule["truncation"] = cfg.truncation
    digest.update(json.dumps(rule, sort_keys=True).encode())
    digest.update(code_version(Path(__file__)).encode())
    return digest.hexdigest()


def derive_max_length(
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    cfg: TokenizeConfig,
    cap: int,
    pairs: list[str] | None = None,
) -> int:
    """`cfg.max_length` if set, else the given percentile of token lengths (of both texts of a
    pair together); capped by the model."""
    if cfg.max_length is not None:
        return min(cfg.max_length, cap)
    lengths = [len(ids) for ids in tokenizer(texts, pairs, truncation=False)["input_ids"]]
    return int(min(cap, max(8, int(np.ceil(np.percentile(lengths, cfg.length_percentile))))))


def encode_texts(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    pairs: list[str] | None,
    max_length: int,
    truncation: str = "longest_first",
) -> Any:
    """Token ids of texts, or of text pairs cut per `truncation` (`longest_first`, `only_second`)."""
    if pairs is None:
        return tokenizer(texts, truncation=True, max_length=max_length)
    return tokenizer(texts, pairs, truncation=truncation, max_length=max_length)


def tokenize_splits(
    splits: Splits,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cfg: TokenizeConfig,
    target_column: str = "label_id",
) -> DatasetDict:
    """Batched `datasets.map` over every split: input_ids, attention_mask (token_type_ids), and
    `labels` from the split frames' `target_column`."""
    from datasets import Dataset, DatasetDict

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        pairs = batch.get(TEXT_PAIR)
        encoded = encode_texts(tokenizer, batch["text"], pairs, max_length, cfg.truncation)
        encoded["labels"] = batch[target_column]
        encoded[TRUNCATED] = cut_off(tokenizer, batch["text"], encoded, max_length, pairs)
        return dict(encoded)

    out = {}
    for name, frame in splits.frames().items():
        columns = ["text", *([TEXT_PAIR] if TEXT_PAIR in frame.columns else []), target_column]
        dataset = Dataset.from_pandas(frame[columns], preserve_index=False)
        out[name] = dataset.map(
            encode,
            batched=True,
            batch_size=cfg.batch_size,
            num_proc=cfg.num_proc,
            remove_columns=columns,
            desc=f"tokenize {name}",
            # `datasets` would otherwise fingerprint the transform by pickling the whole tokenizer:
            # more than half of the time on BANKING77. The content names the result just as well.
            new_fingerprint=_fingerprint(name, frame, tokenizer, max_length, target_column, cfg.truncation),
        )
    return DatasetDict(out)


TRUNCATED = "truncated"
"""A column of each tokenized split: whether the text lost tokens at max_length (the tokenizer's own
overflow, so a text of exactly max_length tokens is not counted)."""


def cut_off(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    encoded: Any,
    max_length: int,
    pairs: list[str] | None = None,
) -> list[bool]:
    """Whether each text (pair) was cut: a fast tokenizer keeps the overflow; else the uncut length
    decides."""
    if encoded.encodings is not None:
        return [bool(encoding.overflowing) for encoding in encoded.encodings]
    return [len(ids) > max_length for ids in tokenizer(texts, pairs, truncation=False)["input_ids"]]


def _fingerprint(
    name: str,
    frame: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    target_column: str,
    truncation: str,
) -> str:
    """A deterministic `datasets` fingerprint of one tokenized split, from what it is made of."""
    version = code_version(Path(__file__))
    head = f"{name}|{tokenizer.name_or_path}|{max_length}|{target_column}|{truncation}|{version}"
    digest = hashlib.sha256(head.encode())
    for row in _rows(frame, target_column):
        digest.update(row.encode())
    return digest.hexdigest()[:32]


def tokenize(
    splits: Splits, model_dir: Path, cfg: TokenizeConfig, target_column: str = "label_id"
) -> tuple[DatasetDict, dict[str, Any]]:
    """Every split tokenized with the rule's max_length; the facts recorded with the cache entry."""
    tokenizer = load_tokenizer(model_dir)
    train = splits.train
    pairs = train[TEXT_PAIR].tolist() if TEXT_PAIR in train.columns else None
    max_length = derive_max_length(
        train["text"].tolist(), tokenizer, cfg, model_max_length(tokenizer, model_dir), pairs
    )
    dataset = tokenize_splits(splits, tokenizer, max_length, cfg, target_column)
    truncated = sum(int(np.sum(dataset[name][TRUNCATED])) for name in dataset)
    return dataset.remove_columns(TRUNCATED), {"max_length": max_length, "truncated_examples": truncated}
