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

REPO_ROOT = Path(__file__).resolve().parent.parent


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
