"""Content hashes that name caches and lineage: files by their bytes, code by its source."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def fingerprint_files(directory: Path, names: Iterable[str]) -> str:
    """SHA-256 over the named files present in `directory` (names and bytes, in the given order)."""
    digest = hashlib.sha256()
    for name in names:
        path = directory / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def code_version(*sources: Path) -> str:
    """A short hash of source files: new code, new cache entries and checkpoint keys."""
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
