"""The disk caches as entries `refinery gc` can weigh and remove, least recently used first.

Three kinds of entry: a tokenization cache entry (`tokenize.cache_dir/<key>`), the checkpoints of
one training (`train.checkpoint_dir/<key>/checkpoint-*`) and a finished training's model kept for
reuse (`train.checkpoint_dir/<key>/trained`). An entry's last use is the newest modification time
of its top-level files (a cache hit and a reuse touch them). Entries named by a registered
version's lineage (`tokenized_key`, `checkpoint_key` tags) are protected: never removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from tasks.tokenization.cache import META_FILE, STAGING
from tasks.training.checkpoints import TRAINED_DIR

TOKENIZED, CHECKPOINTS, TRAINED = "tokenized", "checkpoints", "trained"


@dataclass(frozen=True)
class CacheEntry:
    """One removable unit of cache: what it is, its key, its paths, size and last use."""

    kind: str  # tokenized | checkpoints | trained
    key: str  # the cache key: a tokenization key or a checkpoint folder's name
    paths: tuple[Path, ...]
    size_bytes: int
    last_used: float  # seconds since the epoch

    def describe(self) -> str:
        return f"{self.kind} {self.key} ({self.size_bytes / 1e6:.1f} MB) in {self.paths[0].parent}"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _last_used(paths: tuple[Path, ...]) -> float:
    times = [p.stat().st_mtime for p in paths]
    times += [child.stat().st_mtime for p in paths if p.is_dir() for child in p.iterdir()]
    return max(times)


def _entry(kind: str, key: str, paths: list[Path]) -> CacheEntry:
    found = tuple(sorted(paths))
    return CacheEntry(kind, key, found, sum(_size(p) for p in found), _last_used(found))


def cache_entries(tokenized_dir: Path, checkpoint_dir: Path) -> list[CacheEntry]:
    """Every entry under the two cache folders (builds in progress are not entries)."""
    entries: list[CacheEntry] = []
    if tokenized_dir.is_dir():
        for folder in sorted(tokenized_dir.iterdir()):
            if folder.is_dir() and STAGING not in folder.name and (folder / META_FILE).is_file():
                entries.append(_entry(TOKENIZED, folder.name, [folder]))
    if checkpoint_dir.is_dir():
        for folder in sorted(p for p in checkpoint_dir.iterdir() if p.is_dir()):
            checkpoints = [p for p in folder.glob("checkpoint-*") if p.is_dir()]
            if checkpoints:
                entries.append(_entry(CHECKPOINTS, folder.name, checkpoints))
            if (folder / TRAINED_DIR / "metrics.json").is_file():
                entries.append(_entry(TRAINED, folder.name, [folder / TRAINED_DIR]))
    return entries


def over_budget(entries: list[CacheEntry], budget_bytes: int, protected: set[str]) -> list[CacheEntry]:
    """The entries to remove, least recently used first, until the rest fits `budget_bytes`;
    an entry whose key is in `protected` is never among them."""
    total = sum(entry.size_bytes for entry in entries)
    chosen: list[CacheEntry] = []
    for entry in sorted(entries, key=lambda e: e.last_used):
        if total <= budget_bytes:
            break
        if entry.key not in protected:
            chosen.append(entry)
            total -= entry.size_bytes
    return chosen


def remove_entry(entry: CacheEntry) -> bool:
    """Remove `entry`; False when a training holds its checkpoint folder now (left as it is)."""
    if entry.kind == TOKENIZED:
        for path in entry.paths:
            shutil.rmtree(path, ignore_errors=True)
        return True
    folder = entry.paths[0].parent
    try:  # the lock the train step holds while it trains into or reuses this folder
        with FileLock(str(folder.with_name(f"{folder.name}.lock")), timeout=0):
            for path in entry.paths:
                shutil.rmtree(path, ignore_errors=True)
    except Timeout:
        return False
    return True
