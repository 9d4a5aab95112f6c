"""Tokenized splits cached on disk under a key of their content, for every task type.

A task type names what its tokenization depends on (split contents, the length rule, its own
code); this module adds the tokenizer files, the library versions and its own code, builds the
entry only on a miss and publishes it atomically, so a half-written entry is never a hit. The
staging folders of killed builds are removed by the next build; a full disk is one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.files import read_json, space_for
from tasks.core.hashing import code_version
from tasks.core.layout import RunLayout
from tasks.models.base_models import tokenizer_fingerprint

if TYPE_CHECKING:
    from datasets import DatasetDict

META_FILE = "refinery_meta.json"
STAGING = ".tmp-"  # <key>.tmp-<host>-<pid>-<random>: a build in progress, never an entry
STALE_AFTER_S = 24 * 3600  # a staging folder this old is a killed build's, whichever machine
Build = Callable[[], "tuple[DatasetDict, dict[str, Any]]"]


def cache_key(task: str, content_key: str, model_dir: Path) -> str:
    """The entry's name: the task type, its content key, the tokenizer files, library and code versions."""
    digest = hashlib.sha256()
    digest.update(f"{task}\n{content_key}\n".encode())
    digest.update(tokenizer_fingerprint(model_dir).encode())
    digest.update(f"tokenizers {version('tokenizers')} transformers {version('transformers')}".encode())
    digest.update(code_version(Path(__file__)).encode())
    return f"{task}-{digest.hexdigest()[:24]}"


def publish_cached(cache_dir: Path, key: str, model_dir: Path, build: Build) -> tuple[Path, dict[str, Any]]:
    """`cache_dir/key` when it was built before, else what `build` returns, saved there atomically."""
    target = cache_dir / key
    meta_path = target / META_FILE
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        os.utime(meta_path)  # used now: `refinery gc` removes the least recently used entries first
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
    remove_stale_staging(cache_dir)
    staging = target.with_name(f"{key}{STAGING}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with space_for(staging, "tokenize.cache_dir"):
            dataset.save_to_disk(str(staging))
            (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # never left to be mistaken for an entry
        raise
    if target.exists() and not meta_path.is_file():
        shutil.rmtree(target, ignore_errors=True)  # no metadata: not a published entry
    try:
        staging.rename(target)  # atomic publish: a half-written cache is never seen as a hit
    except OSError:
        if not meta_path.is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)  # published meanwhile, from the same inputs
    return target, {**meta, "cache_hit": False}


def _is_stale(staging: Path, host: str) -> bool:
    """A staging folder of a build that cannot finish: its process is gone, or it is a day old."""
    name = staging.name.rpartition(STAGING)[2]
    owner, _, rest = name.rpartition("-")[0].rpartition("-")
    pid = int(rest) if rest.isdigit() else -1
    try:
        if time.time() - staging.stat().st_mtime > STALE_AFTER_S:
            return True
    except FileNotFoundError:  # published or removed meanwhile
        return False
    if owner != host or pid <= 0:
        return False  # another machine's build (a shared cache): only its age tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_staging(cache_dir: Path) -> list[Path]:
    """Remove the staging folders that killed builds left in `cache_dir`; return them."""
    if not cache_dir.is_dir():
        return []
    host = socket.gethostname()
    stale = [p for p in cache_dir.iterdir() if STAGING in p.name and _is_stale(p, host)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def copy_tokenized(source: Path, layout: RunLayout) -> None:
    """Put the (cached) tokenized splits into the run directory."""
    shutil.rmtree(layout.tokenized_dir, ignore_errors=True)
    with space_for(layout.tokenized_dir, "the run directory (--workdir)"):
        shutil.copytree(source, layout.tokenized_dir)


def load_tokenized(layout: RunLayout, in_memory: bool = False) -> DatasetDict:
    """The tokenized splits of the run directory; `in_memory`: copied into memory, so that a
    `map` over them (TRL's packing) never writes cache files into the run's folder (a DVC output)."""
    from datasets import DatasetDict, load_from_disk  # only where a step reads them: not on a cache hit

    loaded = load_from_disk(str(layout.tokenized_dir), keep_in_memory=in_memory)
    assert isinstance(loaded, DatasetDict)
    return loaded


def tokenized_meta(layout: RunLayout) -> dict[str, Any]:
    """What the tokenize step recorded: the cache key, max_length, rows, tokenizer fingerprint."""
    return read_json(layout.tokenized_dir / META_FILE)
