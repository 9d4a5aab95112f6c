"""The Great Expectations machinery every task type's data contract runs on.

A task type builds `Check`s (an expectation, the batch it runs on, and why it matters) on
`Batch`es (its frames with `source_file` / `source_row`); `run_suite` runs them in one ephemeral
context and returns plain outcomes that point at file, row and value. The checks across files
(class sizes, test labels unseen in train, train/test leakage) are shared here.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core import ExpectationValidationResult
from great_expectations.data_context.types.base import ProgressBarsConfig

from tasks.core.config import ValidateConfig
from tasks.validation.report import ExpectationOutcome, OffendingRow, ValidationResult

ROW = "source_row"
STRIPPED = "_refinery_stripped_text"  # texts compared after strip(): "\nHi" and "Hi" are one example
STRIPPED_PAIR = "_refinery_stripped_text_pair"  # the second text of a pair, stripped alike
# invisible format characters (zero-width space / joiners, word joiner, BOM, soft hyphen, direction
# marks): a text made of them only is as empty as a blank one, and "Hi\u200b" is "Hi" to a reader
INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def visible_text(value: Any) -> Any:
    """A text without its invisible characters and surrounding blanks; other values unchanged."""
    return INVISIBLE.sub("", value).strip() if isinstance(value, str) else value


_TRAIN_COPIES = "_refinery_copies_in_train"
_CLASS_BATCH = "train_class_counts"
_LEAK_BATCH = "test_against_train"


@dataclass(frozen=True)
class Limit:
    """The params setting behind a check, for an error that names the fix.

    `message` is formatted with `count` (rows or classes that broke it), `share` (of all checked,
    e.g. "2.5 %"), `total`, `key` and `value`: e.g. "{count} duplicate texts ({share}) exceed
    {key} = {value}; deduplicate the file or raise the limit".
    """

    key: str
    value: float | int | bool
    message: str

    def describe(self, count: int, total: int) -> str:
        share = f"{100.0 * count / total:.1f} %" if total else "n/a"
        value = f"{self.value:g}" if isinstance(self.value, float) else str(self.value).lower()
        return self.message.format(count=count, share=share, total=total, key=self.key, value=value)


@dataclass(frozen=True)
class Check:
    """One expectation, the batch it runs on, and what to tell the user about it."""

    name: str
    expectation: gxe.Expectation
    batch: str
    file: str
    column: str | None
    why: str
    limit: Limit | None = None  # the params setting that decides, when the check has a threshold


@dataclass(frozen=True)
class Batch:
    """A dataframe given to Great Expectations, and the columns that identify its offending rows."""

    frame: pd.DataFrame
    file: str
    index_columns: list[str]


def min_examples_limit(cfg: ValidateConfig) -> Limit:
    """Classes below `validate.min_examples_per_class`."""
    return Limit("validate.min_examples_per_class", cfg.min_examples_per_class,
                 "{count} of {total} classes have fewer examples than {key} = {value}; "
                 "add examples, merge or drop those classes, or lower the limit")  # fmt: skip


def leakage_limit(cfg: ValidateConfig, what: str = "text") -> Limit:
    """Test texts (pairs) that are also train texts (`validate.allow_leakage`)."""
    return Limit("validate.allow_leakage", cfg.allow_leakage,
                 "{count} test " + what + "s ({share}) also occur in train and {key} = {value}; "
                 "remove them from one file, or set the key to true to report them only")  # fmt: skip


def duplicates_limit(cfg: ValidateConfig, what: str = "texts") -> Limit:
    """Rows sharing their content with another row beyond `validate.max_duplicate_fraction`."""
    return Limit("validate.max_duplicate_fraction", cfg.max_duplicate_fraction,
                 "{count} duplicate " + what + " ({share}) exceed {key} = {value}; "
                 "deduplicate the file or raise the limit")  # fmt: skip


def pair_column(text: str, pair: str) -> str:
    """The derived column holding both texts of a pair (stripped, as JSON), named `text+pair`: a
    duplicate or a leak is the same pair, not the same first or second text alone."""
    return f"{text}+{pair}"


def _pair_key(text: Any, pair: Any) -> str | None:
    if not isinstance(text, str) or not isinstance(pair, str):
        return None  # a missing side: the null checks report it, uniqueness and leakage ignore it
    return json.dumps([text, pair], ensure_ascii=False)


def file_batch(key: str, frame: pd.DataFrame, text: str, label: str, pair: str | None = None) -> Batch:
    """`frame` for the suite: stripped texts beside the originals; with a `pair` column, its stripped
    texts and the pair column of both (`pair_column`)."""
    has_file = "source_file" in frame.columns and len(frame) > 0
    file = str(frame["source_file"].iloc[0]) if has_file else key
    shown = [text, label]
    if text in frame.columns:
        stripped = frame[text].map(visible_text)
        frame = frame.assign(**{STRIPPED: stripped})
    if pair is not None and pair in frame.columns:
        second = frame[pair].map(visible_text)
        frame = frame.assign(**{STRIPPED_PAIR: second})
        shown.append(pair)
        if text in frame.columns:
            both = [_pair_key(a, b) for a, b in zip(frame[STRIPPED], second, strict=True)]
            frame = frame.assign(**{pair_column(text, pair): both})
            shown.append(pair_column(text, pair))
    index_columns = [ROW] + [c for c in dict.fromkeys(shown) if c in frame.columns]
    return Batch(frame=frame, file=file, index_columns=index_columns)


def cross_checks(
    batches: dict[str, Batch], text: str, label: str, cfg: ValidateConfig, pair: str | None = None
) -> tuple[list[Check], dict[str, Batch]]:
    """Expectations that compare files, and the small frames they derive for GX to check; with a
    `pair` column, leakage is of whole pairs (`pair_column`).

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
                             "(validate.min_examples_per_class)", min_examples_limit(cfg)))  # fmt: skip
    if test is None:
        return checks, derived
    if label in train.frame.columns and label in test.frame.columns:
        seen = sorted(str(v) for v in train.frame[label].dropna().unique())
        # unseen labels: the model can never predict a class it was not trained on
        checks.append(Check("test_labels_seen_in_train", gxe.ExpectColumnValuesToBeInSet(column=label,
                             value_set=seen), "test", test.file, label,
                             "every test label must occur in train"))  # fmt: skip
    compared, column, what = (
        (pair_column(text, pair), pair_column(text, pair), "pair") if pair else (STRIPPED, text, "text")
    )
    if compared in train.frame.columns and compared in test.frame.columns:
        train_copies = train.frame[compared].value_counts()
        copies = test.frame[compared].map(train_copies).fillna(0).astype(int)
        derived[_LEAK_BATCH] = replace(test, frame=test.frame.assign(**{_TRAIN_COPIES: copies}))
        # data leaks: a test text (pair) seen in training inflates the test score
        leak = gxe.ExpectColumnValuesToBeBetween(
            column=_TRAIN_COPIES, max_value=0, mostly=0.0 if cfg.allow_leakage else 1.0
        )
        allowed = " (reported only: validate.allow_leakage is true)" if cfg.allow_leakage else ""
        checks.append(Check("no_train_test_leakage", leak, _LEAK_BATCH, f"{train.file}+{test.file}", column,
                             f"no test {what} may also be a train {what}, after strip(){allowed}",
                             leakage_limit(cfg, what)))  # fmt: skip
    return checks, derived


def result_of(outcomes: list[ExpectationOutcome], statistics: dict[str, int | float]) -> ValidationResult:
    """The suite's verdict: every outcome, `statistics` plus how many expectations ran and failed."""
    statistics["expectations_evaluated"] = len(outcomes)
    statistics["expectations_failed"] = sum(not o.success for o in outcomes)
    return ValidationResult(
        success=all(o.success for o in outcomes), expectations=outcomes, statistics=statistics
    )


def templated_result(
    batches: dict[str, Batch], checks: list[Check], cfg: ValidateConfig, max_length: int
) -> ValidationResult:
    """The suite of a generative task type (SFT, preference): `checks` plus the cross-file checks on
    the prompts, with each file's rows and templated examples over `max_length` (`total_tokens`)."""
    more, derived = cross_checks(batches, "prompt", "label", cfg)
    outcomes = run_suite({**batches, **derived}, checks + more)
    statistics: dict[str, int | float] = {"max_length": max_length}
    for key, batch in batches.items():
        statistics[f"rows_{key}"] = len(batch.frame)
        statistics[f"truncated_{key}"] = int((batch.frame["total_tokens"] > max_length).sum())
    return result_of(outcomes, statistics)


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
    count, total = int(found.get("unexpected_count") or 0), int(found.get("element_count") or 0)
    fix = c.limit.describe(count, total) if c.limit is not None and not result.success else ""
    return ExpectationOutcome(
        name=c.name,
        expectation=result.expectation_config.type if result.expectation_config else "",
        file=c.file,
        column=c.column,
        success=bool(result.success),
        why=c.why,
        unexpected_count=count,
        offending=[_offending_row(item, c.column, rows_file) for item in items],
        fix=fix,
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
