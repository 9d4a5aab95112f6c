"""`data.validation_fraction: 0` (or a dataset too small for a validation split): training runs
without evaluation or early stopping, and says so, instead of a Trainer traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tasks.cli.summary import training_line
from tasks.core.config import DataConfig, TokenizeConfig, TrainConfig
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types.classification.records import split_frames
from tasks.task_types.classification.tokenization import tokenize_splits
from tasks.task_types.classification.training import train_classifier
from tests.integration.conftest import banking_sample

pytestmark = pytest.mark.integration


def test_an_empty_validation_split_trains_without_early_stopping_and_says_so(
    tmp_path: Path, tiny_base_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = banking_sample(per_class=10)
    frame["source_file"], frame["source_row"] = "sample.csv", range(1, len(frame) + 1)
    data = DataConfig(test_path=None, label_column="category", validation_fraction=0.0)
    splits = split_frames({"train": frame}, data)
    assert len(splits.validation) == 0
    tokenized = tokenize_splits(splits, load_tokenizer(tiny_base_model), 32, TokenizeConfig())
    cfg = TrainConfig(  # the defaults: evaluate every epoch, early stopping with patience 2
        base_model=str(tiny_base_model), max_steps=3, batch_size=8, progress_bars=False
    )
    with caplog.at_level(logging.WARNING, logger="tasks.training.arguments"):
        trainer, summary = train_classifier(
            tokenized, load_tokenizer(tiny_base_model), tiny_base_model, splits.labels, cfg, tmp_path / "c"
        )
    assert summary["global_steps"] == 3 and summary["validation_examples"] == 0
    assert not any("eval_loss" in entry for entry in trainer.state.log_history)
    assert "the validation split is empty (data.validation_fraction)" in caplog.text
    assert "no validation split (data.validation_fraction): no evaluation or early stopping" in (
        training_line(summary)
    )
