"""The classifier's data contract: a Great Expectations suite built from `validate:` and `data:`.

Each file is checked on its own (columns, nulls, blank / too-long texts, duplicates, known labels),
then across files (classes with too few examples, test labels unseen in train, train/test leakage).
Every failure points at file, row and value through the `source_file` / `source_row` columns.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from tasks.core.config import DataConfig, ValidateConfig
from tasks.validation.report import ValidationResult
from tasks.validation.suite import (
    STRIPPED,
    Batch,
    Check,
    Limit,
    cross_checks,
    duplicates_limit,
    file_batch,
    result_of,
    run_suite,
)


def validate_frames(
    frames: dict[str, pd.DataFrame],
    data_cfg: DataConfig,
    cfg: ValidateConfig,
    known_labels: list[str] | None = None,
) -> ValidationResult:
    """Run the suite on `frames` ("train", optional "test"); never raises for bad data."""
    text, label = data_cfg.text_column, data_cfg.label_column
    batches = {key: file_batch(key, frame, text, label) for key, frame in frames.items()}
    checks = [c for key in frames for c in _file_checks(key, batches[key], text, label, cfg, known_labels)]
    across, derived = cross_checks(batches, text, label, cfg)
    outcomes = run_suite({**batches, **derived}, checks + across)
    statistics: dict[str, int | float] = {}
    for key, batch in batches.items():
        statistics[f"rows_{key}"] = len(batch.frame)
        if label in batch.frame.columns:
            statistics[f"classes_{key}"] = int(batch.frame[label].nunique())
    return result_of(outcomes, statistics)


def _file_checks(
    key: str,
    batch: Batch,
    text: str,
    label: str,
    cfg: ValidateConfig,
    known_labels: list[str] | None,
) -> list[Check]:
    """Expectations on one file; those on a missing column are skipped, its absence is reported."""
    file, columns = batch.file, batch.frame.columns

    def on(
        name: str, column: str, expectation: gxe.Expectation, why: str, limit: Limit | None = None
    ) -> Check:
        return Check(name, expectation, key, file, column, why, limit)

    checks = [
        # nothing else can be checked, or trained, without the text
        on("text_column_present", text, gxe.ExpectColumnToExist(column=text),
           f"the text column '{text}' (data.text_column) must exist"),
        # nothing else can be checked, or trained, without the label
        on("label_column_present", label, gxe.ExpectColumnToExist(column=label),
           f"the label column '{label}' (data.label_column) must exist"),
    ]  # fmt: skip
    if text in columns:
        checks += [
            # missing inputs: a row without text teaches nothing
            on("text_not_null", text, gxe.ExpectColumnValuesToNotBeNull(column=text),
               "a row without text cannot be learned from"),
            # blank inputs: whitespace-only text with a label is noise
            on("text_not_empty", text,
               gxe.ExpectColumnValueLengthsToBeBetween(column=STRIPPED, min_value=cfg.min_text_length),
               f"text stripped of blanks must have at least {cfg.min_text_length} characters "
               "(validate.min_text_length)",
               Limit("validate.min_text_length", cfg.min_text_length,
                     "{count} texts ({share}) are shorter than {key} = {value} characters without blanks and "
                     "invisible characters; "
                     "fill in or drop those rows, or lower the limit")),
            # runaway rows: usually a broken quote that swallowed the following lines
            on("text_not_too_long", text,
               gxe.ExpectColumnValueLengthsToBeBetween(column=text, max_value=cfg.max_text_length),
               f"text must have at most {cfg.max_text_length} characters (validate.max_text_length)",
               Limit("validate.max_text_length", cfg.max_text_length,
                     "{count} texts ({share}) are longer than {key} = {value} characters; "
                     "check those rows (often a broken quote) or raise the limit")),
            # duplicates overweight some examples (all rows sharing a stripped text count)
            on("no_duplicate_texts", text,
               gxe.ExpectColumnValuesToBeUnique(column=STRIPPED, mostly=1.0 - cfg.max_duplicate_fraction),
               f"at most {cfg.max_duplicate_fraction:g} of rows may share their text with another row "
               "(validate.max_duplicate_fraction)", duplicates_limit(cfg)),
        ]  # fmt: skip
    if label in columns:
        # missing targets: an unlabelled row cannot be trained on
        checks.append(on("label_not_null", label, gxe.ExpectColumnValuesToNotBeNull(column=label),
                         "every row needs a label"))  # fmt: skip
        if key == "train":
            # one class is no classifier: it would predict that class for every text
            two = gxe.ExpectColumnUniqueValueCountToBeBetween(column=label, min_value=2)
            why = f"train needs at least two classes in '{label}' (data.label_column)"
            checks.append(on("at_least_two_classes", label, two, why))
        if known_labels is not None:
            # typos in labels silently create new classes
            checks.append(on("labels_in_known_set", label,
                             gxe.ExpectColumnValuesToBeInSet(column=label, value_set=sorted(known_labels)),
                             "labels must be among those of data.labels_path"))  # fmt: skip
    return checks
