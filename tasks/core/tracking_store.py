"""Which MLflow tracking store a command uses, and pointing MLflow at it for a block.

`MLFLOW_TRACKING_URI` when set (team mode: a server), else `register.tracking_uri`. Here, at the
bottom layer, because resolving `train.base_model: models:/NAME@ALIAS` (tasks.models) reads the
same store that registration (tasks.registry) writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

from tasks.core.config import RegisterConfig
from tasks.core.errors import RefineryError

if TYPE_CHECKING:  # mlflow is imported where a store is used: a training rank (torchrun, Ray) never
    from mlflow import MlflowClient  # touches MLflow and need not pay for (or have) the import

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_SQLITE = "sqlite:///"


def effective_tracking_uri(cfg: RegisterConfig, given: str | None = None) -> str:
    """The store a command uses: `given` (e.g. `--tracking-uri`), else `MLFLOW_TRACKING_URI` (team
    mode: a server), else `register.tracking_uri`."""
    return given or os.environ.get(TRACKING_URI_ENV) or cfg.tracking_uri


def redacted(uri: str) -> str:
    """`uri` with the password of a `user:password@` part replaced by `***`, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def sqlite_store_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` store, None for any other kind of store."""
    return Path(uri.removeprefix(_SQLITE).split("?")[0]) if uri.startswith(_SQLITE) else None


def store_exists(uri: str) -> bool:
    """False for a SQLite store whose file is missing: MLflow would silently create an empty one."""
    store = sqlite_store_file(uri)
    return store is None or store.is_file()


def require_store(uri: str) -> str:
    """`uri`, or a one-line error when it names a SQLite file that does not exist."""
    if not store_exists(uri):
        raise RefineryError(
            f"tracking store {uri} not found (no file {sqlite_store_file(uri)}); pass --tracking-uri"
        )
    return uri


def _client(uri: str) -> MlflowClient:
    """A client of `uri`. A new SQLite store's tables are made by one process at a time: two runs
    creating the same store at once would both migrate it, and one would fail (alembic)."""
    from mlflow import MlflowClient

    store = sqlite_store_file(uri)
    if store is None or not store.parent.is_dir():
        return MlflowClient(tracking_uri=uri)
    with FileLock(str(store.with_name(f".{store.name}.init.lock"))):
        return MlflowClient(tracking_uri=uri)  # creating it creates (or checks) the tables


@contextmanager
def tracking_to(uri: str) -> Iterator[MlflowClient]:
    """Point MLflow at `uri` for the block, then restore the previous URI and environment."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved_env = os.environ.get(TRACKING_URI_ENV)
    try:
        # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would then outlive the block
        with _use_tracking_uri(uri):
            yield _client(uri)
    finally:
        if saved_env is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = saved_env
