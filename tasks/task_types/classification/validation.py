"""The classifier's data contract: a Great Expectations suite built from `validate:` and `data:`.

Each file is checked on its own (columns, nulls, blank / too-long texts, duplicates, known labels),
then across files (classes with too few examples, test labels unseen in train, train/test leakage).
With `data.text_pair_column` both texts are checked alike, and duplicates and leakage are judged
on the pair. Every failure points at file, row and value through `source_file` / `source_row`.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from tasks.core.config import DataConfig, ValidateConfig
from tasks.validation.report import ValidationResult
from tasks.validation.suite import (
    STRIPPED,
    STRIPPED_PAIR,
    Batch,
    Check,
    Limit,
    cross_checks,
    duplicates_limit,
    file_batch,
    pair_column,
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
    text, label, pair = data_cfg.text_column, data_cfg.label_column, data_cfg.text_pair_column
    batches = {key: file_batch(key, frame, text, label, pair) for key, frame in frames.items()}
    checks = [c for key in frames for c in _file_checks(key, batches[key], data_cfg, cfg, known_labels)]
    across, derived = cross_checks(batches, text, label, cfg, pair)
    outcomes = run_suite({**batches, **derived}, checks + across)
    statistics: dict[str, int | float] = {}
    for key, batch in batches.items():
        statistics[f"rows_{key}"] = len(batch.frame)
        if label in batch.frame.columns:
            statistics[f"classes_{key}"] = int(batch.frame[label].nunique())
    return result_of(outcomes, statistics)


def text_checks(key: str, batch: Batch, data_cfg: DataConfig, cfg: ValidateConfig) -> list[Check]:
    """Expectations on the texts of one file (and the second texts of pairs): present, not null,
    not blank, not too long, few duplicates (of pairs, when there are pairs)."""
    text, pair = data_cfg.text_column, data_cfg.text_pair_column
    checks = _one_text_checks(key, batch, cfg, "text", text, STRIPPED, "data.text_column")
    if pair is None:
        checks += _duplicate_checks(key, batch, cfg, text, STRIPPED, "texts")
        return checks
    checks += _one_text_checks(key, batch, cfg, "text_pair", pair, STRIPPED_PAIR, "data.text_pair_column")
    return checks + _duplicate_checks(
        key, batch, cfg, pair_column(text, pair), pair_column(text, pair), "pairs"
    )


def _one_text_checks(
    key: str, batch: Batch, cfg: ValidateConfig, name: str, column: str, stripped: str, param: str
) -> list[Check]:
    """`name`_column_present, then (when present) `name`_not_null, _not_empty and _not_too_long."""

    def on(check: str, expectation: gxe.Expectation, why: str, limit: Limit | None = None) -> Check:
        return Check(f"{name}_{check}", expectation, key, batch.file, column, why, limit)

    # nothing else can be checked, or trained, without the text
    checks = [on("column_present", gxe.ExpectColumnToExist(column=column),
                 f"the text column '{column}' ({param}) must exist")]  # fmt: skip
    if column not in batch.frame.columns:
        return checks
    strip = gxe.ExpectColumnValueLengthsToBeBetween
    return [
        *checks,
        # missing inputs: a row without text teaches nothing
        on("not_null", gxe.ExpectColumnValuesToNotBeNull(column=column),
           "a row without text cannot be learned from"),
        # blank inputs: whitespace-only text with a label is noise
        on("not_empty", strip(column=stripped, min_value=cfg.min_text_length),
           f"text stripped of blanks must have at least {cfg.min_text_length} characters "
           "(validate.min_text_length)",
           Limit("validate.min_text_length", cfg.min_text_length,
                 "{count} texts ({share}) are shorter than {key} = {value} characters without blanks and "
                 "invisible characters; "
                 "fill in or drop those rows, or lower the limit")),
        # runaway rows: usually a broken quote that swallowed the following lines
        on("not_too_long", strip(column=column, max_value=cfg.max_text_length),
           f"text must have at most {cfg.max_text_length} characters (validate.max_text_length)",
           Limit("validate.max_text_length", cfg.max_text_length,
                 "{count} texts ({share}) are longer than {key} = {value} characters; "
                 "check those rows (often a broken quote) or raise the limit")),
    ]  # fmt: skip


def _duplicate_checks(
    key: str, batch: Batch, cfg: ValidateConfig, column: str, compared: str, what: str
) -> list[Check]:
    """Duplicates overweight some examples (all rows sharing a stripped text, or pair, count)."""
    if compared not in batch.frame.columns:
        return []
    unique = gxe.ExpectColumnValuesToBeUnique(column=compared, mostly=1.0 - cfg.max_duplicate_fraction)
    why = (
        f"at most {cfg.max_duplicate_fraction:g} of rows may share their {what[:-1]} with another row "
        "(validate.max_duplicate_fraction)"
    )
    return [Check(f"no_duplicate_{what}", unique, key, batch.file, column, why, duplicates_limit(cfg, what))]


def _file_checks(
    key: str,
    batch: Batch,
    data_cfg: DataConfig,
    cfg: ValidateConfig,
    known_labels: list[str] | None,
) -> list[Check]:
    """Expectations on one file; those on a missing column are skipped, its absence is reported."""
    file, columns, label = batch.file, batch.frame.columns, data_cfg.label_column

    def on(name: str, expectation: gxe.Expectation, why: str) -> Check:
        return Check(name, expectation, key, file, label, why)

    checks = text_checks(key, batch, data_cfg, cfg)
    # nothing else can be checked, or trained, without the label
    checks.append(on("label_column_present", gxe.ExpectColumnToExist(column=label),
                     f"the label column '{label}' (data.label_column) must exist"))  # fmt: skip
    if label in columns:
        # missing targets: an unlabelled row cannot be trained on
        checks.append(on("label_not_null", gxe.ExpectColumnValuesToNotBeNull(column=label),
                         "every row needs a label"))  # fmt: skip
        if key == "train":
            # one class is no classifier: it would predict that class for every text
            two = gxe.ExpectColumnUniqueValueCountToBeBetween(column=label, min_value=2)
            why = f"train needs at least two classes in '{label}' (data.label_column)"
            checks.append(on("at_least_two_classes", two, why))
        if known_labels is not None:
            # typos in labels silently create new classes
            checks.append(on("labels_in_known_set",
                             gxe.ExpectColumnValuesToBeInSet(column=label, value_set=sorted(known_labels)),
                             "labels must be among those of data.labels_path"))  # fmt: skip
    return checks
