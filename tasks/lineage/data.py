"""The data a run read, named by content: the md5 of each file's bytes.

That is the md5 DVC records for a tracked file (DVC 3 hashes a file's raw bytes), so a version
trained on `data/banking77/train.csv` carries the same hash as the entry in `data.dvc`'s manifest;
a file from anywhere else gets the same kind of hash, never `data.dvc`'s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tasks.core.config import DataConfig

UNREAD = "none"


def file_md5(path: Path) -> str:
    """`md5:<hex>` of the file's bytes (DVC's md5 of a tracked file)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"md5:{digest.hexdigest()}"


@dataclass(frozen=True)
class DataHashes:
    """The content hash of each data file a run read; `none` for a file it did not have."""

    train: str
    test: str = UNREAD  # a separate test file; none when the test split came from train
    labels: str = UNREAD  # data.labels_path

    @property
    def combined(self) -> str:
        """One value for the `data_hash` tag: train, then test and labels when read, joined by `+`."""
        return "+".join(h for h in (self.train, self.test, self.labels) if h != UNREAD)


def data_hashes(data: DataConfig, repo_dir: Path = Path()) -> DataHashes:
    """The hashes of the files `data:` names, resolved against `repo_dir` as the validate step reads them."""

    def hashed(path: str | None) -> str:
        if not path:
            return UNREAD
        resolved = Path(path) if Path(path).is_absolute() else repo_dir / path
        return file_md5(resolved) if resolved.is_file() else f"missing:{path}"

    return DataHashes(hashed(data.train_path), hashed(data.test_path), hashed(data.labels_path))
