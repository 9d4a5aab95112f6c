"""Reading and writing the small JSON files steps hand to each other; a full disk as one line."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.core.errors import DiskFullError


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_json(path: Path, data: Any) -> None:
    """`data` as indented, key-sorted JSON (two runs diff line by line); creates the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXT = ("no space left on device", "disk quota exceeded", "file too large", "[errno 28]", "[errno 27]")


def is_disk_full(err: BaseException) -> bool:
    """True for a write refused for lack of space: a full disk, a quota, a file-size limit."""
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    return isinstance(err, OSError) and any(text in str(err).lower() for text in _FULL_TEXT)


@contextmanager
def space_for(path: Path, setting: str) -> Iterator[None]:
    """Turn a full disk while writing `path` into one line naming it and the setting that moves it."""
    try:
        yield
    except OSError as err:
        if not is_disk_full(err):
            raise
        raise DiskFullError(
            f"no space left on device writing {path} ({err.strerror or err}); free space there "
            f"or point {setting} at a larger disk"
        ) from None
