"""Team mode: the folders a served deployment may read and write, and nothing else.

A deployment run takes `params_path`, `overrides` and `workdir` from whoever starts it. Without a
limit, `overrides={"data.train_path": "/etc/shadow"}` would make the worker read that file and log
it to MLflow, and a `checkpoint_dir` or `cache_dir` elsewhere would be written to or cleaned. The
serving process names its roots in `REFINERY_PATH_ROOTS` (folders separated by `:`, e.g. the data,
cache and runs folders); every path a run is given must then lie under one of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError

ROOTS_ENV = "REFINERY_PATH_ROOTS"
_PATH_KEYS = ("checkpoint_dir", "cache_dir")  # and every key ending in `_path`


def allowed_roots(env: dict[str, str] | None = None) -> list[Path] | None:
    """The configured roots, resolved; None when the process sets none (a local run: no limit)."""
    value = (env if env is not None else os.environ).get(ROOTS_ENV, "")
    roots = [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]
    return roots or None


def path_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted key -> value of every path setting (`*_path`, `checkpoint_dir`, `cache_dir`) given."""
    found: dict[str, str] = {}
    for key, value in settings.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            found |= path_settings(value, dotted)
        elif isinstance(value, str) and value and (key.endswith("_path") or key in _PATH_KEYS):
            found[dotted] = value
    return found


def require_under_roots(paths: dict[str, str], roots: list[Path] | None) -> None:
    """One-line error for the first path (symlinks and `..` resolved) outside every root."""
    if roots is None:
        return
    for key, value in paths.items():
        resolved = Path(value).expanduser().resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            allowed = ", ".join(str(root) for root in roots)
            raise ConfigError(
                f"'{key}' = '{value}' is outside the folders this deployment may use ({allowed}); "
                f"point it under one of them, or add a folder to {ROOTS_ENV} of the serving process"
            )
