"""Texts to token ids with the base model's fast tokenizer, cached on disk by content.

The cache key covers everything the output depends on: the split contents, the tokenizer
files, the `max_length` rule and this module's source. Same inputs reuse the cache; any
change misses it. Padding is left to the collator (dynamic padding per batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tasks.base_models import fingerprint_files, resolve_base_model
from tasks.config import Params, TokenizeConfig
from tasks.data import Splits, read_splits
from tasks.errors import ModelSourceError
from tasks.layout import RunLayout

META_FILE = "refinery_meta.json"


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    """The model's fast tokenizer; slow (pure Python) tokenizers are refused."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    if not tokenizer.is_fast:
        raise ModelSourceError(f"train.base_model: {model_dir} has no fast tokenizer (tokenizer.json)")
    return tokenizer


def code_version(*modules: Path) -> str:
    """A hash of this module's source (and of `modules`): new code, new cache entries."""
    digest = hashlib.sha256()
    for path in (Path(__file__), *modules):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(splits: Splits, tokenizer_dir: Path, cfg: TokenizeConfig) -> str:
    """Content key of a tokenization: data, tokenizer files, max_length rule, code version."""
    digest = hashlib.sha256()
    for name, frame in splits.frames().items():
        digest.update(name.encode())
        for text, label_id in zip(frame["text"], frame["label_id"], strict=True):
            digest.update(f"{label_id}\t{text}\n".encode())
    digest.update(json.dumps(splits.labels).encode())
    digest.update(fingerprint_files(tokenizer_dir).encode())
    rule = {"max_length": cfg.max_length, "percentile": cfg.length_percentile}
    digest.update(json.dumps(rule, sort_keys=True).encode())
    digest.update(code_version().encode())
    return digest.hexdigest()[:24]


def model_max_length(tokenizer: PreTrainedTokenizerBase, model_dir: Path) -> int:
    """The longest input the model accepts: tokenizer limit and position embeddings."""
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 1_000_000 else []
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if isinstance(config.get("max_position_embeddings"), int):
        limits.append(int(config["max_position_embeddings"]))
    return min(limits) if limits else 512


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

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
        encoded["labels"] = batch["label_id"]
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


def _fingerprint(name: str, frame: Any, tokenizer: PreTrainedTokenizerBase, max_length: int) -> str:
    """A deterministic `datasets` fingerprint of one tokenized split, from what it is made of."""
    digest = hashlib.sha256(f"{name}|{tokenizer.name_or_path}|{max_length}|{code_version()}".encode())
    digest.update(
        "\n".join(f"{i}\t{t}" for i, t in zip(frame["label_id"], frame["text"], strict=True)).encode()
    )
    return digest.hexdigest()[:32]


def tokenize_cached(splits: Splits, model_dir: Path, cfg: TokenizeConfig) -> tuple[Path, dict[str, Any]]:
    """Directory of the tokenized splits for these inputs, computing them only on a cache miss."""

    def build() -> tuple[DatasetDict, dict[str, Any]]:
        tokenizer = load_tokenizer(model_dir)
        max_length = derive_max_length(
            splits.train["text"].tolist(), tokenizer, cfg, model_max_length(tokenizer, model_dir)
        )
        dataset = tokenize_splits(splits, tokenizer, max_length, cfg)
        truncated = sum(
            int(np.sum(np.asarray([len(ids) for ids in dataset[name]["input_ids"]]) >= max_length))
            for name in dataset
        )
        return dataset, {"max_length": max_length, "truncated_examples": truncated}

    return publish_cached(Path(cfg.cache_dir), cache_key(splits, model_dir, cfg), model_dir, build)


def publish_cached(
    cache_dir: Path, key: str, model_dir: Path, build: Callable[[], tuple[DatasetDict, dict[str, Any]]]
) -> tuple[Path, dict[str, Any]]:
    """`cache_dir/key` when it was built before, else what `build` returns, saved there atomically."""
    target = cache_dir / key
    meta_path = target / META_FILE
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return target, {**meta, "cache_hit": True}
    dataset, facts = build()
    meta = {
        "cache_key": key,
        **facts,
        "rows": {name: len(dataset[name]) for name in dataset},
        "tokenizer_fingerprint": fingerprint_files(model_dir),
    }
    # staged under a name of this build's own: runs with the same inputs at the same time (two
    # deployment runs in one served process) must not write into, or delete, each other's files
    staging = target.with_name(f"{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    dataset.save_to_disk(str(staging))
    (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    if target.exists() and not meta_path.is_file():
        shutil.rmtree(target, ignore_errors=True)  # no metadata: not a published entry
    try:
        staging.rename(target)  # atomic publish: a half-written cache is never seen as a hit
    except OSError:
        if not meta_path.is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)  # published meanwhile, from the same inputs
    return target, {**meta, "cache_hit": False}


def copy_tokenized(source: Path, layout: RunLayout) -> None:
    """Put the (cached) tokenized splits into the run directory."""
    shutil.rmtree(layout.tokenized_dir, ignore_errors=True)
    shutil.copytree(source, layout.tokenized_dir)


def cache_key_for(params: Params, layout: RunLayout) -> str:
    """The key `tokenize_cached` will use for this run (the Prefect task cache uses the same)."""
    return cache_key(read_splits(layout), resolve_base_model(params.train.base_model), params.tokenize)


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Tokenize the validated splits into `layout.tokenized_dir` (from the cache when possible)."""
    if params.task == "causal_lm":
        from tasks import sft_tokenization

        return sft_tokenization.run_step(params, layout)
    model_dir = resolve_base_model(params.train.base_model)
    source, meta = tokenize_cached(read_splits(layout), model_dir, params.tokenize)
    copy_tokenized(source, layout)
    return meta


def load_tokenized(layout: RunLayout) -> DatasetDict:
    """The tokenized splits written by `run_step`."""
    loaded = load_from_disk(str(layout.tokenized_dir))
    assert isinstance(loaded, DatasetDict)
    return loaded


if __name__ == "__main__":
    from tasks.stage import stage_main

    stage_main(run_step)
