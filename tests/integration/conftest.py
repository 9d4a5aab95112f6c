"""Integration fixtures: a tiny model built from a config, a ~200-row BANKING77 sample, a real
MLflow store in tmp_path and a real temporary Prefect API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from tasks.config import Params
from tests.conftest import REPO_ROOT
from tests.fixtures import build_tiny_classifier

SAMPLE_CLASSES = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed"]


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real, temporary Prefect API (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT and its fast tokenizer; the pipeline gives it a new head."""
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-base"), ["x", "y"])


def banking_sample(per_class: int = 50, split: str = "train") -> pd.DataFrame:
    """`per_class` rows of each of four intents from the bundled BANKING77 data."""
    frame = pd.read_csv(REPO_ROOT / "data" / "banking77" / f"{split}.csv")
    frame = frame[frame["category"].isin(SAMPLE_CLASSES)]
    return frame.groupby("category", group_keys=False).head(per_class).reset_index(drop=True)


def tiny_params(tmp_path: Path, base_model: Path, train_csv: Path, **sections: dict[str, Any]) -> Path:
    """A params.yaml for a run that takes seconds: tiny model, few steps, stores in tmp_path."""
    raw: dict[str, Any] = {
        "data": {
            "name": "banking77-sample",
            "train_path": str(train_csv),
            "test_path": None,
            "text_column": "text",
            "label_column": "category",
            "test_fraction": 0.2,
            "validation_fraction": 0.1,
        },
        "validate": {"min_examples_per_class": 5},
        "tokenize": {"cache_dir": str(tmp_path / "cache" / "tokenized")},
        "train": {
            "base_model": str(base_model),
            "learning_rate": 5e-3,
            "batch_size": 16,
            "epochs": 2,
            "early_stopping_patience": None,
            "checkpoint_dir": str(tmp_path / "cache" / "checkpoints"),
            "logging_steps": 2,
            "progress_bars": False,
        },
        "gate": {"thresholds": {"accuracy": 0.0, "f1_macro": 0.0}},
        "register": {
            "model_name": "tiny-intent",
            "experiment": "refinery-tests",
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        },
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "params.yaml"
    # every section written out, as in the repository's params.yaml (DVC reads sections by name)
    # (a deliberately invalid file, for the bad-input tests, is written as given)
    with contextlib.suppress(ValidationError):
        raw = Params.model_validate(raw).as_dict()
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def sample_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    banking_sample().to_csv(path, index=False)
    return path


@pytest.fixture
def mlflow_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from tmp_path so MLflow's default ./mlruns artifacts land there; no env override."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
