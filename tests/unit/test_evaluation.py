"""Evaluation: metrics agree with scikit-learn, predictions keep row order, the step writes its files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import evaluate
import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset, DatasetDict
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tasks.core.config import EvaluateConfig, Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.metrics.loading import load_metric
from tasks.steps.evaluation import run_step
from tasks.task_types.classification.evaluation import (
    classification_metrics,
    per_class_metrics,
    plot_confusion_matrix,
    predict,
)
from tests.fixtures import build_tiny_classifier

LABELS = ["card_arrival", "lost_or_stolen_card", "top_up_failed"]
TEXTS = [
    "my card",
    "when will my new card arrive i still have not got it",
    "top up declined",
    "lost card",
    "hi can you help me my card was stolen and i need to cancel it please",
    "why was my top up not verified",
    "where is my card",
    "i lost my phone and my card",
    "top up",
    "my top up is still pending why",
]
# Class 3 is in the references but never predicted; class 4 is in neither.
PREDICTIONS = [0, 0, 1, 1, 2, 2, 2, 0, 1, 0]
REFERENCES = [0, 1, 1, 1, 2, 3, 2, 0, 3, 0]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny") / "model", LABELS)


def tokenized(model_dir: Path, texts: list[str], label_ids: list[int]) -> Dataset:
    """Texts tokenized like the tokenize step does: unpadded ids plus a `labels` column."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    encoded = tokenizer(texts, truncation=True, max_length=64)
    return Dataset.from_dict({**encoded, "labels": label_ids})


def test_metric_modules_load_from_the_repo_offline() -> None:
    for name in ("accuracy", "f1", "precision", "recall"):
        module = load_metric(name)
        assert isinstance(module, evaluate.Metric)
        assert module.name == name
    assert load_metric("f1") is load_metric("f1")  # loaded once per process


def test_classification_metrics_match_sklearn_with_absent_classes() -> None:
    metrics = classification_metrics(PREDICTIONS, REFERENCES, num_labels=5)

    labels = list(range(5))
    expected = {
        "accuracy": accuracy_score(REFERENCES, PREDICTIONS),
        "f1_macro": f1_score(REFERENCES, PREDICTIONS, labels=labels, average="macro", zero_division=0),
        "f1_weighted": f1_score(REFERENCES, PREDICTIONS, labels=labels, average="weighted", zero_division=0),
        "precision_macro": precision_score(
            REFERENCES, PREDICTIONS, labels=labels, average="macro", zero_division=0
        ),
        "recall_macro": recall_score(
            REFERENCES, PREDICTIONS, labels=labels, average="macro", zero_division=0
        ),
    }
    assert metrics == pytest.approx(expected)
    assert all(type(value) is float for value in metrics.values())  # JSON-ready
    # The absent classes count in the macro average: five classes, not the four seen.
    seen_only = f1_score(REFERENCES, PREDICTIONS, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert metrics["f1_macro"] == pytest.approx(seen_only * 4 / 5)


def test_classification_metrics_accept_numpy_arrays() -> None:
    as_lists = classification_metrics(PREDICTIONS, REFERENCES, num_labels=4)
    as_arrays = classification_metrics(np.asarray(PREDICTIONS), np.asarray(REFERENCES), num_labels=4)
    assert as_arrays == pytest.approx(as_lists)


def test_per_class_metrics_one_row_per_label() -> None:
    names = ["a", "b", "c", "d", "e"]
    frame = per_class_metrics(PREDICTIONS, REFERENCES, names)

    assert list(frame.columns) == ["label", "precision", "recall", "f1", "support"]
    assert frame["label"].tolist() == names
    assert frame["support"].tolist() == [3, 3, 2, 2, 0]
    expected_f1 = f1_score(REFERENCES, PREDICTIONS, labels=range(5), average=None, zero_division=0)
    np.testing.assert_allclose(frame["f1"], expected_f1)
    assert frame.loc[3, "recall"] == 0.0  # class 3 is never predicted


@pytest.mark.parametrize("num_classes", [3, 77])
def test_confusion_matrix_png_is_written_and_scales(tmp_path: Path, num_classes: int) -> None:
    rng = np.random.default_rng(0)
    references = rng.integers(0, num_classes, size=500)
    predictions = np.where(rng.random(500) < 0.7, references, rng.integers(0, num_classes, size=500))
    names = [f"intent_{i}_with_a_long_name" for i in range(num_classes)]
    path = tmp_path / "eval" / "confusion.png"

    plot_confusion_matrix(predictions, references, names, path)

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(data[16:20], "big")  # IHDR width
    assert width >= (1500 if num_classes == 77 else 600)


def test_predict_keeps_row_order_and_matches_one_by_one(tiny_model_dir: Path) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    dataset = tokenized(tiny_model_dir, TEXTS, [0] * len(TEXTS))
    assert len(set(len(ids) for ids in dataset["input_ids"])) > 3  # lengths differ: batches get sorted

    predictions, confidence = predict(model, tokenizer, dataset, batch_size=3)

    model.eval()
    expected_ids, expected_conf = [], []
    with torch.inference_mode():
        for text in TEXTS:
            probs = torch.softmax(model(**tokenizer(text, return_tensors="pt")).logits, dim=-1)[0]
            expected_ids.append(int(probs.argmax()))
            expected_conf.append(float(probs.max()))
    assert predictions.tolist() == expected_ids
    np.testing.assert_allclose(confidence, expected_conf, atol=1e-5)
    assert predictions.shape == confidence.shape == (len(TEXTS),)


def write_run(root: Path, model_dir: Path, raw_rows: int | None = None) -> RunLayout:
    """A run directory as the earlier steps leave it: model, tokenized splits, raw test rows."""
    layout = RunLayout(root)
    shutil.copytree(model_dir, layout.model_dir)
    label_ids = [i % len(LABELS) for i in range(len(TEXTS))]
    split = tokenized(layout.model_dir, TEXTS, label_ids)
    DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(layout.tokenized_dir))
    raw = pd.DataFrame(
        {
            "text": TEXTS,
            "label": [LABELS[i] for i in label_ids],
            "label_id": label_ids,
            "source_file": "data/test.csv",
            "source_row": [i + 2 for i in range(len(TEXTS))],
        }
    )
    layout.splits_dir.mkdir(parents=True)
    raw.iloc[:raw_rows].to_parquet(layout.splits_dir / "test.parquet", index=False)
    return layout


def test_run_step_writes_metrics_tables_and_plot(tmp_path: Path, tiny_model_dir: Path) -> None:
    layout = write_run(tmp_path / "run", tiny_model_dir)

    returned = run_step(Params(evaluate=EvaluateConfig(batch_size=4)), layout)

    metrics = json.loads(layout.eval_metrics.read_text(encoding="utf-8"))
    assert metrics == returned
    assert set(metrics) == {
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "n_test",
    }
    assert metrics["n_test"] == len(TEXTS)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())  # flat

    per_class = pd.read_csv(layout.per_class_csv)
    assert per_class["label"].tolist() == LABELS
    assert per_class["support"].sum() == len(TEXTS)

    assert layout.confusion_png.stat().st_size > 1000

    predictions = pd.read_csv(layout.predictions_csv)
    assert list(predictions.columns) == [
        "text",
        "label",
        "prediction",
        "confidence",
        "source_file",
        "source_row",
    ]
    assert predictions["text"].tolist() == TEXTS
    assert predictions["source_row"].tolist() == list(range(2, len(TEXTS) + 2))
    assert set(predictions["prediction"]) <= set(LABELS)
    assert predictions["confidence"].between(1 / len(LABELS) - 1e-4, 1.0).all()
    # The metrics are those of the written predictions.
    label_id = {name: i for i, name in enumerate(LABELS)}
    recomputed = classification_metrics(
        predictions["prediction"].map(label_id).tolist(), predictions["label"].map(label_id).tolist(), 3
    )
    assert {k: metrics[k] for k in recomputed} == pytest.approx(recomputed)


def test_run_step_refuses_raw_rows_that_do_not_match(tmp_path: Path, tiny_model_dir: Path) -> None:
    layout = write_run(tmp_path / "run", tiny_model_dir, raw_rows=len(TEXTS) - 1)

    with pytest.raises(RefineryError, match=r"test\.parquet: 9 rows but the tokenized test split has 10"):
        run_step(Params(), layout)
    assert not layout.eval_metrics.exists()


def test_run_step_without_a_model_names_the_missing_step(tmp_path: Path) -> None:
    with pytest.raises(RefineryError, match="run the train step first"):
        run_step(Params(), RunLayout(tmp_path / "empty"))
