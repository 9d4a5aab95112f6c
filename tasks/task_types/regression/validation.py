"""The regression data contract: a Great Expectations suite built from `validate:` and `data:`.

Each file: the texts as for a classifier (present, not null, not blank, not too long, few duplicates
of texts or of pairs), and a target in every row that is a finite number; train's target must vary.
Across files: train/test leakage of texts (of pairs, with `data.text_pair_column`). Every failure
points at file, row and value through the `source_file` / `source_row` columns.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from tasks.core.config import DataConfig, ValidateConfig
from tasks.task_types.classification.validation import text_checks
from tasks.task_types.regression.records import as_number, target_problem
from tasks.validation.report import ValidationResult
from tasks.validation.suite import Batch, Check, cross_checks, file_batch, result_of, run_suite

PROBLEM = "_refinery_target_problem"  # per row: "ok", "missing", "not a number" or "not finite"
NUMBER = "_refinery_target_number"  # per row: the target as a float (None when it is not a number)
_NO_CLASSES = ""  # no column has this name: the shared cross-file checks on classes are skipped


def target_batch(key: str, frame: pd.DataFrame, data_cfg: DataConfig) -> Batch:
    """`frame` for the suite, with each target's problem and number beside the raw value."""
    batch = file_batch(key, frame, data_cfg.text_column, data_cfg.label_column, data_cfg.text_pair_column)
    target = data_cfg.label_column
    if target not in batch.frame.columns:
        return batch
    raw = batch.frame[target]
    numbers = raw.map(as_number).astype(np.float64)
    frame = batch.frame.assign(**{PROBLEM: raw.map(target_problem), NUMBER: numbers})
    return Batch(frame=frame, file=batch.file, index_columns=batch.index_columns)


def target_checks(key: str, batch: Batch, data_cfg: DataConfig) -> list[Check]:
    """The target of one file: present, a finite number in every row, varying in train."""
    target, file = data_cfg.label_column, batch.file

    def on(name: str, expectation: gxe.Expectation, why: str) -> Check:
        return Check(name, expectation, key, file, target, why)

    # nothing can be trained without the number to predict
    checks = [on("target_column_present", gxe.ExpectColumnToExist(column=target),
                 f"the target column '{target}' (data.label_column) must exist")]  # fmt: skip
    if target not in batch.frame.columns:
        return checks
    checks += [
        # a missing target: the row cannot be trained on or scored
        on("target_not_null", gxe.ExpectColumnValuesToNotBeNull(column=target), "every row needs a target"),
        # words, booleans or inf/nan written out: a regression learns numbers only
        on("target_is_finite_number",
           gxe.ExpectColumnValuesToBeInSet(column=PROBLEM, value_set=["ok", "missing"]),
           "every target must be a finite number"),
    ]  # fmt: skip
    if key == "train":
        # a constant target teaches nothing: the model would predict that value for every text
        varies = gxe.ExpectColumnUniqueValueCountToBeBetween(column=NUMBER, min_value=2)
        checks.append(on("target_varies", varies, f"train needs at least two values in '{target}'"))
    return checks


def validate_frames(
    frames: dict[str, pd.DataFrame], data_cfg: DataConfig, cfg: ValidateConfig
) -> ValidationResult:
    """Run the suite on `frames` ("train", optional "test"); never raises for bad data."""
    batches = {key: target_batch(key, frame, data_cfg) for key, frame in frames.items()}
    checks = [
        c
        for key, batch in batches.items()
        for c in [*text_checks(key, batch, data_cfg, cfg), *target_checks(key, batch, data_cfg)]
    ]
    text, pair = data_cfg.text_column, data_cfg.text_pair_column
    across, derived = cross_checks(batches, text, _NO_CLASSES, cfg, pair)
    outcomes = run_suite({**batches, **derived}, checks + across)
    statistics: dict[str, int | float] = {}
    for key, batch in batches.items():
        statistics[f"rows_{key}"] = len(batch.frame)
        if NUMBER in batch.frame.columns:
            numbers = batch.frame[NUMBER]
            numbers = numbers[np.isfinite(numbers)]
            if len(numbers):
                statistics[f"target_mean_{key}"] = round(float(numbers.mean()), 6)
                statistics[f"target_std_{key}"] = round(float(numbers.std(ddof=0)), 6)
    return result_of(outcomes, statistics)
