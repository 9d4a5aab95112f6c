"""The multi-label data contract: a Great Expectations suite built from `validate:`, `data:` and
`multi_label:`.

Each file is checked on its rows (texts, and pairs, as for a classifier; label cells that read as
label sets; empty sets when not allowed) and on its labels, one row per (row, label) (names outside
`data.labels_path`); across files, labels with too few train rows, test labels unseen in train and
train/test leakage (the shared checks, on those label rows and on the texts). Every failure points
at file, row and value through the `source_file` / `source_row` columns.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from tasks.core.config import DataConfig, MultiLabelConfig, ValidateConfig
from tasks.task_types.classification.validation import text_checks
from tasks.task_types.multi_label.records import label_cells, show_cell
from tasks.validation.report import ValidationResult
from tasks.validation.suite import (
    ROW,
    Batch,
    Check,
    Limit,
    cross_checks,
    file_batch,
    result_of,
    run_suite,
)

COUNT = "_refinery_label_count"  # labels in a readable cell; null when missing or unreadable
MALFORMED = "_refinery_label_malformed"  # 1 when the cell cannot be read as a label set
_NO_COLUMN = "_refinery_absent"  # a column no frame has: turns off one half of the shared checks


def _rows_frame(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """The file's rows with the label cell as one line of text (lists as JSON, an unreadable cell
    with its reason), its label count and whether it is malformed."""
    label = data.label_column
    if label not in frame.columns:
        return frame
    cells = label_cells(frame, data)
    shown = [
        None if c.labels is None and c.problem is None else show_cell(v) or ""
        for c, v in zip(cells, frame[label], strict=True)
    ]
    shown = [s if c.problem is None else f"{s} ({c.problem})" for s, c in zip(shown, cells, strict=True)]
    malformed = [
        None if c.labels is None and c.problem is None else float(c.problem is not None) for c in cells
    ]
    return frame.assign(
        **{label: shown, COUNT: [None if c.labels is None else float(len(c.labels)) for c in cells],
           MALFORMED: malformed}
    )  # fmt: skip


def _labels_batch(frame: pd.DataFrame, data: DataConfig, file: str) -> Batch:
    """One row per (row, label) of the readable cells: what the label checks count and compare."""
    label = data.label_column
    pairs = [
        (row, name)
        for row, cell in zip(frame[ROW], label_cells(frame, data), strict=True)
        for name in (cell.labels or [])
    ]
    exploded = pd.DataFrame(pairs, columns=[ROW, label]).astype({ROW: "int64", label: object})
    return Batch(frame=exploded, file=file, index_columns=[ROW, label])


def validate_frames(
    frames: dict[str, pd.DataFrame],
    data: DataConfig,
    cfg: ValidateConfig,
    multi_label: MultiLabelConfig,
    known_labels: list[str] | None = None,
) -> ValidationResult:
    """Run the suite on `frames` ("train", optional "test"); never raises for bad data."""
    text, label, pair = data.text_column, data.label_column, data.text_pair_column
    rows = {
        key: file_batch(key, _rows_frame(frame, data), text, label, pair) for key, frame in frames.items()
    }
    checks = [c for key in frames for c in _row_checks(f"{key}_rows", rows[key], data, cfg, multi_label)]
    labels: dict[str, Batch] = {}
    if all(label in frame.columns for frame in frames.values()):
        labels = {key: _labels_batch(frame, data, rows[key].file) for key, frame in frames.items()}
        if known_labels is not None:
            in_set = sorted(known_labels)
            for key, batch in labels.items():
                # typos in labels silently create new labels
                expectation = gxe.ExpectColumnValuesToBeInSet(column=label, value_set=in_set)
                why = "labels must be among those of data.labels_path"
                checks.append(Check("labels_in_known_set", expectation, key, batch.file, label, why))
    # rare labels and test labels unseen in train, on the label rows; leakage on the texts
    by_label, label_derived = cross_checks(labels, _NO_COLUMN, label, cfg) if labels else ([], {})
    leaks, leak_derived = cross_checks(rows, text, _NO_COLUMN, cfg, pair)
    batches = {**{f"{k}_rows": b for k, b in rows.items()}, **labels, **label_derived, **leak_derived}
    outcomes = run_suite(batches, checks + by_label + leaks)
    statistics: dict[str, int | float] = {}
    for key, batch in rows.items():
        statistics[f"rows_{key}"] = len(batch.frame)
        if key in labels:
            statistics[f"labels_{key}"] = int(labels[key].frame[label].nunique())
            statistics[f"labels_per_row_{key}"] = round(len(labels[key].frame) / max(len(batch.frame), 1), 3)
    return result_of(outcomes, statistics)


def _row_checks(
    key: str, batch: Batch, data: DataConfig, cfg: ValidateConfig, multi_label: MultiLabelConfig
) -> list[Check]:
    """Expectations on one file's rows; those on a missing column are skipped, its absence is reported."""
    file, columns, label = batch.file, batch.frame.columns, data.label_column

    def on(
        name: str, column: str, expectation: gxe.Expectation, why: str, limit: Limit | None = None
    ) -> Check:
        return Check(name, expectation, key, file, column, why, limit)

    # the texts (and second texts of pairs) as for a classifier: present, not null, not blank, not
    # runaway, few duplicates
    checks = text_checks(key, batch, data, cfg)
    # nothing else can be checked, or trained, without the labels
    checks.append(on("label_column_present", label, gxe.ExpectColumnToExist(column=label),
                     f"the label column '{label}' (data.label_column) must exist"))  # fmt: skip
    if label in columns:
        well_formed = gxe.ExpectColumnValuesToBeBetween(column=MALFORMED, max_value=0)
        checks += [
            # a row without its label cell says nothing (an empty list or cell is "no label")
            on("label_not_null", label, gxe.ExpectColumnValuesToNotBeNull(column=label),
               "every row needs a label cell: a list of labels, or an empty one for none"),
            # a cell that does not read as label names would train on made-up labels
            on("label_cell_well_formed", label, well_formed,
               f"a label cell is a list of label names (JSON Lines, Parquet) or names separated by "
               f"{data.label_delimiter!r} (data.label_delimiter; CSV/TSV)"),
        ]  # fmt: skip
        if not multi_label.allow_empty:
            # "none of these" is not a label the model can learn when the data never means it
            not_empty = gxe.ExpectColumnValuesToBeBetween(column=COUNT, min_value=1)
            why = "every row needs at least one label (multi_label.allow_empty is false)"
            checks.append(on("label_set_not_empty", label, not_empty, why))
    return checks
