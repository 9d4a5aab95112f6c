"""What the data validation found, in forms people and tools read: JSON, Markdown, one error line.

The result is plain data (no Great Expectations objects) so it can be written, diffed between runs,
read back by a later step, and turned into the one-line error a user sees.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.config import ValidateConfig
from tasks.core.errors import DataValidationError

_MD_ROWS_SHOWN = 100
_VALUE_CHARS = 60


@dataclass(frozen=True)
class OffendingRow:
    """One value that broke an expectation: where it is and what it was.

    `row` is the 1-based data row of `file` (header excluded); it is None for a finding about a
    whole class rather than a row, whose `note` then says why (e.g. "1 example").
    """

    file: str
    row: int | None
    value: str | None
    note: str = ""

    def describe(self) -> str:
        where = f"{self.file}:{self.row} " if self.row is not None else ""
        note = f" ({self.note})" if self.note else ""
        return f"{where}{_show(self.value)}{note}"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation of the suite as it ran on one file."""

    name: str
    expectation: str
    file: str
    column: str | None
    success: bool
    why: str
    unexpected_count: int
    offending: list[OffendingRow] = field(default_factory=list)
    fix: str = ""  # a failed threshold: measured value, threshold, the params key and what to do

    def describe(self, max_rows: int) -> str:
        """`name on file column 'c' (offenders...)`, on one line."""
        column = f" column '{self.column}'" if self.column is not None else ""
        shown = "; ".join(row.describe() for row in self.offending[:max_rows])
        more = self.unexpected_count - min(len(self.offending), max_rows)
        if more > 0:
            shown = f"{shown}; ... {more} more" if shown else f"{more} unexpected"
        if not shown:
            # no offending rows (an aggregate, e.g. a count of classes): say what was expected
            shown = "column missing" if self.expectation == "expect_column_to_exist" else self.why
        fix = f": {self.fix}" if self.fix else ""
        return f"{self.name} on {self.file}{column}{fix} ({shown})"


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of the whole suite: overall success, each expectation, and summary statistics."""

    success: bool
    expectations: list[ExpectationOutcome]
    statistics: dict[str, int | float]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.expectations if not outcome.success]

    def to_json(self) -> str:
        """Stable JSON: sorted keys, indented, so two runs diff line by line."""
        return json.dumps(asdict(self), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ValidationResult:
        """Read back what `to_json` wrote."""
        raw: dict[str, Any] = json.loads(text)
        outcomes = [
            ExpectationOutcome(**{**item, "offending": [OffendingRow(**row) for row in item["offending"]]})
            for item in raw["expectations"]
        ]
        return cls(success=raw["success"], expectations=outcomes, statistics=raw["statistics"])

    def failure_message(self, max_rows: int) -> str:
        """One line naming every failed expectation and up to `max_rows` offending rows of each."""
        if self.success:
            return "data validation passed"
        return "data validation failed: " + "; ".join(o.describe(max_rows) for o in self.failed)

    def to_markdown(self) -> str:
        """A report for people: the expectations with ✅/❌, then the offending rows of each failure."""
        verdict = "✅ passed" if self.success else "❌ failed"
        lines = [f"# Data validation {verdict}", "", "| Statistic | Value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in sorted(self.statistics.items())]
        lines += [
            "",
            "## Expectations",
            "",
            "| | Name | Great Expectations type | File | Column | Unexpected | Why |",
            "|---|---|---|---|---|---|---|",
        ]
        for o in self.expectations:
            mark = "✅" if o.success else "❌"
            lines.append(
                f"| {mark} | {o.name} | `{o.expectation}` | {_cell(o.file)} | {_cell(o.column or '')} "
                f"| {o.unexpected_count} | {_cell(o.why)} |"
            )
        for o in self.failed:
            lines += ["", f"## ❌ {o.name} on {o.file}" + (f" column '{o.column}'" if o.column else "")]
            lines += ["", o.why, ""] + ([f"**{o.fix}**", ""] if o.fix else [])
            if not o.offending:
                lines.append("column missing" if o.expectation == "expect_column_to_exist" else "no rows")
                continue
            lines += ["| File | Row | Value | Note |", "|---|---|---|---|"]
            for row in o.offending[:_MD_ROWS_SHOWN]:
                shown_row = "" if row.row is None else str(row.row)
                lines.append(f"| {_cell(row.file)} | {shown_row} | {_cell(_show(row.value))} | {row.note} |")
            if len(o.offending) > _MD_ROWS_SHOWN:
                lines.append(f"\n... {len(o.offending) - _MD_ROWS_SHOWN} more rows in the JSON result")
        return "\n".join(lines) + "\n"


def check(result: ValidationResult, cfg: ValidateConfig) -> None:
    """Stop the pipeline with one readable line when the data broke the suite."""
    if not result.success:
        raise DataValidationError(result.failure_message(cfg.max_failed_rows_shown))


def write_report(result: ValidationResult, json_path: Path, md_path: Path) -> None:
    """Write the result as JSON (for tools and diffs) and Markdown (for people)."""
    for path, text in ((json_path, result.to_json()), (md_path, result.to_markdown())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _show(value: str | None) -> str:
    """A value on one line: quoted with escapes (so blanks and newlines show), cut when long."""
    if value is None:
        return "<missing>"
    cut = value if len(value) <= _VALUE_CHARS else value[:_VALUE_CHARS] + "…"
    return repr(cut)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
