"""One trial of a sweep: train with the trial's params on train, score on validation, never on test.

The sweep's run directory holds the splits validated and tokenized once for all trials; before
the first trial its test split is removed from there (`seal_test_split`), so a trial has no test
examples to read: it loads train and validation only. Pruning hooks into the Trainer's evaluation:
each validation score is reported to Optuna, which may stop the trial there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from datasets import DatasetDict, load_from_disk
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.data.splitting import Splits
from tasks.models.base_models import base_model_dir
from tasks.steps.tokenization import tokenize_cached
from tasks.task_types import task_type_for

SEARCH_SPLITS = ("train", "validation")  # all a trial may see
Report = Callable[[int, float], None]


class PruningReport(TrainerCallback):
    """Reports the validation metric of each evaluation to the trial; stops training when pruned
    (never at the last evaluation: the trial has finished, and completes with its value)."""

    def __init__(self, trial: optuna.Trial, metric: str, on_report: Report | None = None) -> None:
        self.trial, self.metric, self.on_report = trial, metric, on_report
        self.values: list[float] = []
        self.pruned = False

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is None:
            return
        self.values.append(float(value))
        step = len(self.values)  # the evaluation's number: trials with other batch sizes line up
        self.trial.report(float(value), step)
        if self.on_report is not None:
            self.on_report(step, float(value))
        if state.max_steps and state.global_step >= state.max_steps:
            return  # the last evaluation: training is over, pruning would save nothing and lose a result
        if self.trial.should_prune():
            self.pruned = True
            control.should_training_stop = True


def seal_test_split(layout: RunLayout) -> None:
    """Remove the test split from the sweep's run directory: trials read only train and validation.
    (The winner's pipeline run validates and splits again, in its own directory.)"""
    (layout.splits_dir / "test.parquet").unlink(missing_ok=True)
    shutil.rmtree(layout.tokenized_dir / "test", ignore_errors=True)
    listing = layout.tokenized_dir / "dataset_dict.json"
    if listing.is_file():
        listing.write_text(json.dumps({"splits": list(SEARCH_SPLITS)}), encoding="utf-8")


def search_splits(layout: RunLayout) -> Splits:
    """The sweep's train and validation examples (the test frame empty), and the label names."""
    import pandas as pd

    train, validation = (pd.read_parquet(layout.splits_dir / f"{name}.parquet") for name in SEARCH_SPLITS)
    labels = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    return Splits(train=train, validation=validation, test=validation.iloc[0:0], labels=labels)


def trial_inputs(params: Params, layout: RunLayout, retokenize: bool) -> DatasetDict:
    """Tokenized train and validation splits: the sweep's own, or with the trial's `tokenize:`
    settings (from the tokenization cache) when the space searches them."""
    if retokenize:
        model_dir = base_model_dir(params, layout)
        source, _ = tokenize_cached(task_type_for(params), search_splits(layout), model_dir, params)
    else:
        source = layout.tokenized_dir
    return DatasetDict(
        {name: load_from_disk(str(source / name), keep_in_memory=True) for name in SEARCH_SPLITS}
    )


def run_trial(
    params: Params,
    layout: RunLayout,
    trial_dir: Path,
    callbacks: list[TrainerCallback],
    retokenize: bool = False,
) -> dict[str, Any]:
    """Train with the trial's params (checkpoints in `trial_dir`, removed after); the summary."""
    task_type = task_type_for(params)
    model_dir = base_model_dir(params, layout)
    labels = search_splits(layout).labels
    shutil.rmtree(trial_dir, ignore_errors=True)  # a trial never resumes another's checkpoints
    try:
        _, summary = task_type.train(
            trial_inputs(params, layout, retokenize), model_dir, labels, params, trial_dir, callbacks
        )
    finally:
        shutil.rmtree(trial_dir, ignore_errors=True)
    return summary
