"""Tokenized splits cached on disk under a key of their content, for every task type.

A task type names what its tokenization depends on (split contents, the length rule, its own
code); this module adds the tokenizer files, the library versions and its own code, builds the
entry only on a miss and publishes it atomically, so a half-written entry is never a hit.
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

import tokenizers
import transformers
from datasets import DatasetDict, load_from_disk

from tasks.core.files import read_json
from tasks.core.hashing import code_version
from tasks.core.layout import RunLayout
from tasks.models.base_models import tokenizer_fingerprint

META_FILE = "refinery_meta.json"
Build = Callable[[], tuple[DatasetDict, dict[str, Any]]]


def cache_key(task: str, content_key: str, model_dir: Path) -> str:
    """The entry's name: the task type, its content key, the tokenizer files, library and code versions."""
    digest = hashlib.sha256()
    digest.update(f"{task}\n{content_key}\n".encode())
    digest.update(tokenizer_fingerprint(model_dir).encode())
    digest.update(f"tokenizers {tokenizers.__version__} transformers {transformers.__version__}".encode())
    digest.update(code_version(Path(__file__)).encode())
    return f"{task}-{digest.hexdigest()[:24]}"


def publish_cached(cache_dir: Path, key: str, model_dir: Path, build: Build) -> tuple[Path, dict[str, Any]]:
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
        "tokenizer_fingerprint": tokenizer_fingerprint(model_dir),
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


def load_tokenized(layout: RunLayout) -> DatasetDict:
    """The tokenized splits of the run directory."""
    loaded = load_from_disk(str(layout.tokenized_dir))
    assert isinstance(loaded, DatasetDict)
    return loaded


def tokenized_meta(layout: RunLayout) -> dict[str, Any]:
    """What the tokenize step recorded: the cache key, max_length, rows, tokenizer fingerprint."""
    return read_json(layout.tokenized_dir / META_FILE)
