"""Integration fixtures: a tiny model built from a config, a ~200-row BANKING77 sample, a real
MLflow store in tmp_path and a real temporary Prefect API."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure
from pydantic import ValidationError

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision
from tasks.models import gguf as gguf_models
from tasks.task_types.classification.plots import plot_per_class_f1
from tasks.training.plots import plot_training_curve
from tests.conftest import REPO_ROOT
from tests.fixtures import build_tiny_classifier

LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card"]  # of the hand-built run directory
TEXTS = ["when will my card arrive", "what is the exchange rate", "my card was stolen", "lost my card"]
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


def tiny_params(
    tmp_path: Path, base_model: Path, train_csv: Path, task: str | None = None, **sections: dict[str, Any]
) -> Path:
    """A params.yaml for a run that takes seconds: tiny model, few steps, stores in tmp_path; `task`
    names the task type (None: the default, classification)."""
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
        "evaluate": {"cache_dir": str(tmp_path / "cache" / "results")},
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
    if task is not None:
        raw = {**raw, "task": task}
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


def _split_frame(rows: int, offset: int) -> pd.DataFrame:
    ids = [(offset + i) % len(LABELS) for i in range(rows)]
    return pd.DataFrame(
        {
            "text": [f"{TEXTS[(offset + i) % len(TEXTS)]} {i}" for i in range(rows)],
            "label": [LABELS[i] for i in ids],
            "label_id": ids,
            "source_file": "data/train.csv",
            "source_row": range(offset + 1, offset + rows + 1),
        }
    )


def build_run_dir(root: Path, decision: GateDecision) -> RunLayout:
    """Every file the earlier steps leave in a run directory, small but real."""
    layout = RunLayout(root)
    layout.splits_dir.mkdir(parents=True)
    for offset, (name, rows) in enumerate({"train": 12, "validation": 3, "test": 6}.items()):
        _split_frame(rows, offset * 100).to_parquet(layout.splits_dir / f"{name}.parquet", index=False)
    (layout.splits_dir / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    layout.validation_dir.mkdir()
    layout.validation_json.write_text(json.dumps({"success": True, "failures": []}), encoding="utf-8")
    layout.validation_md.write_text("# Validation\n\nAll expectations met.\n", encoding="utf-8")
    build_tiny_classifier(layout.model_dir, LABELS)
    layout.train_dir.mkdir()
    summary = {"train_loss": 1.05, "best_validation_accuracy": 0.67, "checkpoint_dir": "/tmp/ckpt"}
    layout.train_metrics.write_text(json.dumps(summary), encoding="utf-8")
    layout.train_history.write_text(
        "step,epoch,train_loss,learning_rate,eval_loss,eval_accuracy,eval_f1_macro\n"
        "2,0.5,1.10,0.001,,,\n"
        "4,1.0,,,1.05,0.33,0.25\n"
        "6,1.5,0.98,0.0005,,,\n"
        "8,2.0,,,0.97,0.67,0.60\n",
        encoding="utf-8",
    )
    plot_training_curve(layout.train_history, layout.training_curve_png)
    layout.eval_dir.mkdir()
    metrics = {"accuracy": 0.5, "f1_macro": 0.4, "f1_weighted": 0.45, "precision_macro": 0.4}
    layout.eval_metrics.write_text(
        json.dumps({**metrics, "recall_macro": 0.42, "n_test": 6}), encoding="utf-8"
    )
    per_class = pd.DataFrame({"label": LABELS, "precision": 0.5, "recall": 0.4, "f1": 0.44, "support": 2})
    per_class.to_csv(layout.per_class_csv, index=False)
    plot_per_class_f1(per_class, layout.per_class_f1_png)
    predictions = _split_frame(6, 200)[["text", "label"]].assign(prediction=LABELS[0], score=0.4)
    predictions.to_csv(layout.predictions_csv, index=False)
    figure = Figure(figsize=(2, 2))
    figure.add_subplot().imshow([[2, 0, 0], [1, 1, 0], [1, 1, 0]])
    figure.savefig(layout.confusion_png)
    layout.gate_json.write_text(decision.to_json(), encoding="utf-8")
    return layout


SMOLLM2 = "smollm2-135m"


@dataclass
class Converted:
    """The session's one conversion and the GGUF-loaded model it came from."""

    gguf_path: Path
    gguf_model: Any
    gguf_tokenizer: Any
    directory: Path
    seconds: float


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """SmolLM2-135M-Instruct converted once per session from the packaged GGUF, through the real
    loader, keeping what it loaded (tests/integration/test_smollm2*.py; ~30-60 s)."""
    package, pattern, distribution = gguf_models.PACKAGED_GGUF[SMOLLM2]
    gguf_path = gguf_models.find_packaged_gguf(package, pattern, distribution)
    loaded: list[tuple[Any, Any]] = []
    real_load = gguf_models.load_gguf

    def load_and_keep(path: Path) -> tuple[Any, Any]:
        loaded.append(real_load(path))
        return loaded[-1]

    # named as the model cache names it: REFINERY_MODEL_CACHE=directory.parent resolves `smollm2-135m` to it
    out_dir = tmp_path_factory.mktemp("smollm2") / f"{SMOLLM2}-{gguf_models.sha256_file(gguf_path)[:16]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf_models, "load_gguf", load_and_keep)
        started = time.monotonic()
        gguf_models.convert_gguf(gguf_path, out_dir)
        seconds = time.monotonic() - started
    logging.getLogger(__name__).info("converted %s in %.1f s", gguf_path.name, seconds)
    (model, tokenizer) = loaded[0]
    return Converted(gguf_path, model.eval(), tokenizer, out_dir, seconds)
