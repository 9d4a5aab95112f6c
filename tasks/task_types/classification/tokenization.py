"""Classifier texts to token ids with the base model's fast tokenizer.

`max_length` comes from params or the given percentile of train token lengths (capped by the
model); padding is left to the collator (dynamic padding per batch). The content key names what
the result depends on, for the shared on-disk cache (`tasks.tokenization.cache`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.core.config import TokenizeConfig
from tasks.core.hashing import code_version
from tasks.data.splitting import Splits
from tasks.models.tokenizers import load_tokenizer, model_max_length

if TYPE_CHECKING:  # the libraries load when texts are tokenized: a cache hit only computes the key
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase


def content_key(splits: Splits, cfg: TokenizeConfig) -> str:
    """What the tokenized splits depend on besides the tokenizer: texts, label ids, labels, the
    max_length rule and this module's code."""
    digest = hashlib.sha256()
    for name, frame in splits.frames().items():
        digest.update(name.encode())
        for text, label_id in zip(frame["text"], frame["label_id"], strict=True):
            digest.update(f"{label_id}\t{text}\n".encode())
    digest.update(json.dumps(splits.labels).encode())
    rule = {"max_length": cfg.max_length, "percentile": cfg.length_percentile}
    digest.update(json.dumps(rule, sort_keys=True).encode())
    digest.update(code_version(Path(__file__)).encode())
    return digest.hexdigest()


def derive_max_length(
    texts: list[str], tokenizer: PreTrainedTokenizerBase, cfg: TokenizeConfig, cap: int
) -> int:
    """`cfg.max_length` if set, else the given percentile of token lengths; capped by the model."""
    if cfg.max_length is not None:
        return min(cfg.max_length, cap)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
    return int(min(cap, max(8, int(np.ceil(np.percentile(lengths, cfg.length_percentile))))))


def tokenize_splits(
    splits: Splits, tokenizer: PreTrainedTokenizerBase, max_length: int, cfg: TokenizeConfig
) -> DatasetDict:
    """Batched `datasets.map` over every split: input_ids, attention_mask (token_type_ids), labels."""
    from datasets import Dataset, DatasetDict

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
        encoded["labels"] = batch["label_id"]
        encoded[TRUNCATED] = cut_off(tokenizer, batch["text"], encoded, max_length)
        return dict(encoded)

    out = {}
    for name, frame in splits.frames().items():
        dataset = Dataset.from_pandas(frame[["text", "label_id"]], preserve_index=False)
        out[name] = dataset.map(
            encode,
            batched=True,
            batch_size=cfg.batch_size,
            num_proc=cfg.num_proc,
            remove_columns=["text", "label_id"],
            desc=f"tokenize {name}",
            # `datasets` would otherwise fingerprint the transform by pickling the whole tokenizer:
            # more than half of the time on BANKING77. The content names the result just as well.
            new_fingerprint=_fingerprint(name, frame, tokenizer, max_length),
        )
    return DatasetDict(out)


TRUNCATED = "truncated"
"""A column of each tokenized split: whether the text lost tokens at max_length (the tokenizer's own
overflow, so a text of exactly max_length tokens is not counted)."""


def cut_off(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], encoded: Any, max_length: int
) -> list[bool]:
    """Whether each text was cut: a fast tokenizer keeps the overflow; else the uncut length decides."""
    if encoded.encodings is not None:
        return [bool(encoding.overflowing) for encoding in encoded.encodings]
    return [len(ids) > max_length for ids in tokenizer(texts, truncation=False)["input_ids"]]


def _fingerprint(name: str, frame: Any, tokenizer: PreTrainedTokenizerBase, max_length: int) -> str:
    """A deterministic `datasets` fingerprint of one tokenized split, from what it is made of."""
    version = code_version(Path(__file__))
    digest = hashlib.sha256(f"{name}|{tokenizer.name_or_path}|{max_length}|{version}".encode())
    digest.update(
        "\n".join(f"{i}\t{t}" for i, t in zip(frame["label_id"], frame["text"], strict=True)).encode()
    )
    return digest.hexdigest()[:32]


def tokenize(splits: Splits, model_dir: Path, cfg: TokenizeConfig) -> tuple[DatasetDict, dict[str, Any]]:
    """Every split tokenized with the rule's max_length; the facts recorded with the cache entry."""
    tokenizer = load_tokenizer(model_dir)
    max_length = derive_max_length(
        splits.train["text"].tolist(), tokenizer, cfg, model_max_length(tokenizer, model_dir)
    )
    dataset = tokenize_splits(splits, tokenizer, max_length, cfg)
    truncated = sum(int(np.sum(dataset[name][TRUNCATED])) for name in dataset)
    return dataset.remove_columns(TRUNCATED), {"max_length": max_length, "truncated_examples": truncated}
