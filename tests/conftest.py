"""Test-wide settings: offline hubs, no telemetry, quiet progress bars."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_name, _value)

if "PYTEST_XDIST_WORKER" in os.environ:
    # Two workers on a small machine: one intra-op thread per process (and per subprocess it starts)
    # instead of each asking for every core; the tests' models are tiny.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
E2E_DIR = REPO_ROOT / "tests" / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `--dist loadgroup` (`make test`): a module's tests share its fixtures, so they run on
    one worker; the end-to-end tests share one session stack (`make up`), so they all run on one."""
    for item in items:
        path = Path(str(item.path))
        group = "e2e" if E2E_DIR in path.parents else str(path.relative_to(REPO_ROOT))
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri() -> Iterator[None]:
    """`mlflow.set_tracking_uri` exports MLFLOW_TRACKING_URI: a test that calls it must not point
    every later test (and every subprocess they start) at its store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") == before:
        return
    import mlflow

    mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None: MLflow unsets it and the variable
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
