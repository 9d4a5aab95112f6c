"""Finished step results kept under a key of their inputs, so a step whose inputs are unchanged
copies its earlier output folder instead of computing it again.

The twins are the tokenize cache (`tasks.tokenization.cache`) and the reused training
(`tasks.training.checkpoints`); this one serves the evaluate and compare steps, whose output is a
folder of small files. An entry is written whole (staging folder, then one rename) or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

_FILES = "files"


def content_key(*parts: object) -> str:
    """A short hash of `parts` (JSON-serialisable): the name of a result's entry."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def restore_result(cache_dir: Path, key: str, target: Path) -> bool:
    """Replace `target` by the entry `key`'s copy; False (and `target` untouched) when there is none."""
    entry = cache_dir / key / _FILES
    if not entry.is_dir():
        return False
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(entry, target)
    return True


def keep_result(cache_dir: Path, key: str, source: Path) -> None:
    """Keep a copy of the folder `source` as entry `key` (a concurrent writer's entry wins)."""
    entry = cache_dir / key
    if entry.is_dir():
        return
    staging = cache_dir / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging / _FILES)
        staging.rename(entry)
    except OSError:  # another run kept the same entry first, or no space: the result stays computed
        shutil.rmtree(staging, ignore_errors=True)
