"""Validating the user's examples with a Great Expectations suite built from `params.yaml`.

Each file is checked on its own (columns, nulls, blank / too-long texts, duplicates, known labels),
then across files (classes with too few examples, test labels unseen in train, train/test leakage).
Every failure points at file, row and value through the `source_file` / `source_row` columns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core import ExpectationValidationResult
from great_expectations.data_context.types.base import ProgressBarsConfig

from tasks.config import DataConfig, Params, ValidateConfig
from tasks.data import label_names, read_frames, split_frames, write_splits
from tasks.errors import DataValidationError
from tasks.layout import RunLayout
from tasks.validation_report import ExpectationOutcome, OffendingRow, ValidationResult, write_report

__all__ = [
    "ExpectationOutcome",
    "OffendingRow",
    "ValidationResult",
    "check",
    "validate_frames",
    "write_report",
]

ROW = "source_row"
_STRIPPED = "_refinery_stripped_text"  # texts compared after strip(): "\nHi" and "Hi" are one example
_TRAIN_COPIES = "_refinery_copies_in_train"
_CLASS_BATCH = "train_class_counts"
_LEAK_BATCH = "test_against_train"


@dataclass(frozen=True)
class Check:
    """One expectation, the batch it runs on, and what to tell the user about it."""

    name: str
    expectation: gxe.Expectation
    batch: str
    file: str
    column: str | None
    why: str


@dataclass(frozen=True)
class Batch:
    """A dataframe given to Great Expectations, and the columns that identify its offending rows."""

    frame: pd.DataFrame
    file: str
    index_columns: list[str]


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
    statistics["expectations_evaluated"] = len(outcomes)
    statistics["expectations_failed"] = sum(not o.success for o in outcomes)
    return ValidationResult(
        success=all(o.success for o in outcomes), expectations=outcomes, statistics=statistics
    )


def check(result: ValidationResult, cfg: ValidateConfig) -> None:
    """Stop the pipeline with one readable line when the data broke the suite."""
    if not result.success:
        raise DataValidationError(result.failure_message(cfg.max_failed_rows_shown))


def file_batch(key: str, frame: pd.DataFrame, text: str, label: str) -> Batch:
    has_file = "source_file" in frame.columns and len(frame) > 0
    file = str(frame["source_file"].iloc[0]) if has_file else key
    if text in frame.columns:
        stripped = frame[text].map(lambda v: v.strip() if isinstance(v, str) else v)
        frame = frame.assign(**{_STRIPPED: stripped})
    index_columns = [ROW] + [c for c in dict.fromkeys([text, label]) if c in frame.columns]
    return Batch(frame=frame, file=file, index_columns=index_columns)


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

    def on(name: str, column: str, expectation: gxe.Expectation, why: str) -> Check:
        return Check(name, expectation, key, file, column, why)

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
               gxe.ExpectColumnValueLengthsToBeBetween(column=_STRIPPED, min_value=cfg.min_text_length),
               f"text stripped of blanks must have at least {cfg.min_text_length} characters "
               "(validate.min_text_length)"),
            # runaway rows: usually a broken quote that swallowed the following lines
            on("text_not_too_long", text,
               gxe.ExpectColumnValueLengthsToBeBetween(column=text, max_value=cfg.max_text_length),
               f"text must have at most {cfg.max_text_length} characters (validate.max_text_length)"),
            # duplicates overweight some examples (all rows sharing a stripped text count)
            on("no_duplicate_texts", text,
               gxe.ExpectColumnValuesToBeUnique(column=_STRIPPED, mostly=1.0 - cfg.max_duplicate_fraction),
               f"at most {cfg.max_duplicate_fraction:g} of rows may share their text with another row "
               "(validate.max_duplicate_fraction)"),
        ]  # fmt: skip
    if label in columns:
        # missing targets: an unlabelled row cannot be trained on
        checks.append(on("label_not_null", label, gxe.ExpectColumnValuesToNotBeNull(column=label),
                         "every row needs a label"))  # fmt: skip
        if known_labels is not None:
            # typos in labels silently create new classes
            checks.append(on("labels_in_known_set", label,
                             gxe.ExpectColumnValuesToBeInSet(column=label, value_set=sorted(known_labels)),
                             "labels must be among those of data.labels_path"))  # fmt: skip
    return checks


def cross_checks(
    batches: dict[str, Batch], text: str, label: str, cfg: ValidateConfig
) -> tuple[list[Check], dict[str, Batch]]:
    """Expectations that compare files, and the small frames they derive for GX to check.

    GX has no per-value minimum count, and a train-sized `value_set` makes it re-serialize the
    whole set for every metric (seconds per 10k texts), so class sizes and train copies of each
    test text are counted here and validated as columns of derived frames.
    """
    train, test = batches["train"], batches.get("test")
    checks: list[Check] = []
    derived: dict[str, Batch] = {}
    if label in train.frame.columns:
        counts = train.frame[label].dropna().value_counts()
        classes = pd.DataFrame({"class": counts.index.astype(str), "examples": counts.to_numpy()})
        derived[_CLASS_BATCH] = Batch(frame=classes, file=train.file, index_columns=["class"])
        # rare classes: too few examples to learn, or to appear in every split
        min_count = gxe.ExpectColumnValuesToBeBetween(column="examples", min_value=cfg.min_examples_per_class)
        checks.append(Check("classes_have_min_examples", min_count, _CLASS_BATCH, train.file, label,
                             f"every class needs at least {cfg.min_examples_per_class} examples in train "
                             "(validate.min_examples_per_class)"))  # fmt: skip
    if test is None:
        return checks, derived
    if label in train.frame.columns and label in test.frame.columns:
        seen = sorted(str(v) for v in train.frame[label].dropna().unique())
        # unseen labels: the model can never predict a class it was not trained on
        checks.append(Check("test_labels_seen_in_train", gxe.ExpectColumnValuesToBeInSet(column=label,
                             value_set=seen), "test", test.file, label,
                             "every test label must occur in train"))  # fmt: skip
    if text in train.frame.columns and text in test.frame.columns:
        train_copies = train.frame[_STRIPPED].value_counts()
        copies = test.frame[_STRIPPED].map(train_copies).fillna(0).astype(int)
        derived[_LEAK_BATCH] = replace(test, frame=test.frame.assign(**{_TRAIN_COPIES: copies}))
        # data leaks: a test text seen in training inflates the test score
        leak = gxe.ExpectColumnValuesToBeBetween(
            column=_TRAIN_COPIES, max_value=0, mostly=0.0 if cfg.allow_leakage else 1.0
        )
        allowed = " (reported only: validate.allow_leakage is true)" if cfg.allow_leakage else ""
        checks.append(Check("no_train_test_leakage", leak, _LEAK_BATCH, f"{train.file}+{test.file}", text,
                             f"no test text may also be a train text, after strip(){allowed}"))  # fmt: skip
    return checks, derived


def run_suite(batches: dict[str, Batch], checks: list[Check]) -> list[ExpectationOutcome]:
    """One ephemeral context, one suite and validation definition per batch; outcomes in check order."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("refinery")
    by_batch: dict[str, list[Check]] = defaultdict(list)
    for c in checks:
        by_batch[c.batch].append(c)
    results: dict[tuple[str, str], ExpectationValidationResult] = {}
    for key, batch_checks in by_batch.items():
        batch = batches[key]
        definition = source.add_dataframe_asset(key).add_batch_definition_whole_dataframe(key)
        for c in batch_checks:  # GX returns results in its own order: the name in meta matches them back
            c.expectation.meta = {"name": c.name, "why": c.why}
        suite = context.suites.add(
            gx.ExpectationSuite(name=key, expectations=[c.expectation for c in batch_checks])
        )
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=key, data=definition, suite=suite)
        )
        run = validation.run(
            batch_parameters={"dataframe": batch.frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": batch.index_columns},
        )
        for r in run.results:
            config = r.expectation_config
            if config is None or not config.meta:
                raise RuntimeError(f"Great Expectations returned a result without its expectation in {key}")
            results[(key, config.meta["name"])] = r
    return [_outcome(c, results[(c.batch, c.name)], batches[c.batch].file) for c in checks]


def _outcome(c: Check, result: ExpectationValidationResult, rows_file: str) -> ExpectationOutcome:
    error = _exception_message(result.exception_info or {})
    if error is not None:
        raise RuntimeError(f"Great Expectations could not evaluate {c.name} on {c.file}: {error}")
    found = result.result or {}
    items: list[dict[str, Any]] = found.get("unexpected_index_list") or []
    return ExpectationOutcome(
        name=c.name,
        expectation=result.expectation_config.type if result.expectation_config else "",
        file=c.file,
        column=c.column,
        success=bool(result.success),
        why=c.why,
        unexpected_count=int(found.get("unexpected_count") or 0),
        offending=[_offending_row(item, c.column, rows_file) for item in items],
    )


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX reports a failed metric as {raised_exception, exception_message} or nests it by metric id."""
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    nested = (_exception_message(v) for v in info.values() if isinstance(v, dict))
    return next((m for m in nested if m is not None), None)


def _offending_row(item: dict[str, Any], column: str | None, file: str) -> OffendingRow:
    """A GX unexpected-index entry as (file, row, original value); class counts have no row."""
    if "class" in item and ROW not in item:
        return OffendingRow(
            file=file, row=None, value=str(item["class"]), note=f"{item['examples']} examples"
        )
    value = item.get(column) if column is not None else None
    return OffendingRow(file=file, row=int(item[ROW]), value=None if pd.isna(value) else str(value))


def run_step(params: Params, layout: RunLayout) -> dict[str, int | float]:
    """Read the data files, validate them, and only when they pass, write the splits."""
    if params.task == "causal_lm":
        from tasks import sft_validation

        return sft_validation.run_step(params, layout)
    frames = read_frames(params.data)
    known = (
        label_names(frames["train"][params.data.label_column], Path(params.data.labels_path))
        if (params.data.labels_path and params.data.label_column in frames["train"].columns)
        else None
    )
    result = validate_frames(frames, params.data, params.validate_, known)
    write_report(result, layout.validation_json, layout.validation_md)
    check(result, params.validate_)
    write_splits(split_frames(frames, params.data), layout)
    return result.statistics


if __name__ == "__main__":
    from tasks.stage import stage_main

    stage_main(run_step)
