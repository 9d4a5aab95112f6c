"""`refinery init DATA_FILE`: a complete, commented params file for the user's own data.

It reads the file (CSV/TSV/JSONL/Parquet), proposes the text and label columns (asking on a
terminal when two columns fit as well, refusing with the option to pass elsewhere), counts
examples and classes, runs the task type's real data contract on the file and reports what it
would refuse with the setting that decides, and writes params that `refinery run` accepts as is.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.cli.params_file import commented_params
from tasks.core.config import Params, parse_params
from tasks.core.errors import ConfigError, RefineryError
from tasks.data.profiling import ColumnGuess, guess_label_column, guess_text_column, sniff_delimiter
from tasks.data.reading import detect_format, read_table
from tasks.task_types import TASK_TYPES, task_type_for

INSTRUCTION_NAMES = ("instruction", "prompt", "question", "input", "text")
OUTPUT_NAMES = ("output", "response", "answer", "completion", "target")


def add_init_command(commands: Any) -> None:
    """Add `init` to the subparsers `commands` of `refinery`."""
    init = commands.add_parser(
        "init",
        help="write a params file for your own data file",
        description="Read DATA_FILE, propose its text and label columns, warn about what validation "
        "would refuse, and write a complete, commented params file for `refinery run --params`.",
    )
    init.add_argument("data_file", metavar="DATA_FILE", help="train data: .csv, .tsv, .jsonl or .parquet")
    init.add_argument("--test", metavar="FILE", help="a separate test file (default: split off train)")
    init.add_argument("--task", choices=sorted(TASK_TYPES), default="sequence_classification")
    init.add_argument("--text-column", metavar="NAME", help="the text (causal_lm: instruction) column")
    init.add_argument("--label-column", metavar="NAME", help="the label (causal_lm: output) column")
    init.add_argument("--output", default="params.yaml", metavar="FILE", help="default: params.yaml")
    init.add_argument("--force", action="store_true", help="overwrite --output when it exists")
    init.set_defaults(handler=run_init)


def _ask(question: str, default: str, columns: list[str]) -> str:
    """Ask on a terminal; Enter takes the default."""
    answer = input(f"{question} [{default}] (columns: {', '.join(columns)}): ").strip()
    return answer or default


def choose_column(
    role: str, option: str, given: str | None, guess: ColumnGuess, frame: pd.DataFrame, path: Path
) -> str:
    """The column for `role`: as given, as guessed when certain, asked on a terminal, else an error."""
    columns = [c for c in frame.columns if c not in ("source_file", "source_row")]
    chosen = given
    if chosen is None and guess.certain:
        chosen = guess.column
    elif chosen is None and guess.column is not None and sys.stdin.isatty():
        chosen = _ask(f"Which column holds the {role}?", guess.column, columns)
    if chosen is None:
        fits = ", ".join(c for c in (guess.column, *guess.rivals) if c) or "none fits"
        raise ConfigError(
            f"{path}: cannot tell which column holds the {role} (candidates: {fits}; columns: "
            f"{', '.join(columns)}); pass {option} NAME"
        )
    if chosen not in columns:
        raise ConfigError(f"{path}: {option} {chosen!r} is not a column; columns: {', '.join(columns)}")
    return chosen


def _model_name(path: Path, task: str) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-") or "model"
    return f"{stem}-{'lm' if task == 'causal_lm' else 'classifier'}"


def read_any(path: Path) -> tuple[pd.DataFrame, str, str | None]:
    """A data file as the pipeline reads it, its format and its CSV delimiter (sniffed)."""
    fmt = detect_format(path, "auto")
    delimiter = sniff_delimiter(path) if fmt == "csv" and path.is_file() else None
    return read_table(path, fmt, delimiter), fmt, delimiter


def _data_section(
    args: argparse.Namespace, path: Path, frame: pd.DataFrame, fmt: str, delimiter: str | None
) -> tuple[dict[str, Any], str]:
    """`data:` (and for causal_lm `sft:`) keys for the file, and a line saying what was chosen."""
    data: dict[str, Any] = {"name": path.stem, "train_path": str(path), "test_path": args.test, "format": fmt,
                            "csv_delimiter": None if delimiter in (None, ",") else delimiter,
                            "labels_path": None}  # fmt: skip
    if args.task == "causal_lm":
        if "messages" in frame.columns and args.text_column is None:
            return {"data": data, "sft": {"format": "chat"}}, "chat records in column 'messages'"
        text = choose_column("instruction", "--text-column", args.text_column,
                             _named(frame, INSTRUCTION_NAMES), frame, path)  # fmt: skip
        output = choose_column("output", "--label-column", args.label_column,
                               _named(frame, OUTPUT_NAMES), frame, path)  # fmt: skip
        sft = {"format": "instruction", "instruction_field": text, "output_field": output}
        return {"data": data, "sft": sft}, f"instruction column '{text}', output column '{output}'"
    text_guess = guess_text_column(frame)
    text = choose_column("text", "--text-column", args.text_column, text_guess, frame, path)
    label = choose_column("label", "--label-column", args.label_column, guess_label_column(frame, text),
                          frame, path)  # fmt: skip
    data.update(text_column=text, label_column=label)
    classes = frame[label].nunique()
    return {"data": data}, f"text column '{text}', label column '{label}' ({classes} classes)"


def _named(frame: pd.DataFrame, names: tuple[str, ...]) -> ColumnGuess:
    lowered = {str(c).lower(): str(c) for c in frame.columns}
    found = next((lowered[n] for n in names if n in lowered), None)
    return ColumnGuess(found, (), "named so")


def refusals(params: Params, frames: dict[str, pd.DataFrame]) -> list[str]:
    """What `refinery run` would refuse in these files: the real data contract's failures."""
    try:
        result = task_type_for(params).validate(frames, params)
    except RefineryError as err:
        return [f"could not check the data contract: {err}"]
    return [outcome.describe(params.validate_.max_failed_rows_shown) for outcome in result.failed]


def run_init(args: argparse.Namespace) -> int:
    """Write the params file; print what was found and what validation would refuse."""
    output, path = Path(args.output), Path(args.data_file)
    if output.exists() and not args.force:
        raise ConfigError(f"{output} exists; pass --force to overwrite it, or --output another file")
    train, fmt, delimiter = read_any(path)
    frames = {"train": train}
    if args.test:
        frames["test"] = read_any(Path(args.test))[0]
    sections, chosen = _data_section(args, path, train, fmt, delimiter)
    raw = {"task": args.task, **sections, "register": {"model_name": _model_name(path, args.task)}}
    params = parse_params(raw, str(output))
    task_type_for(params, str(output))
    counts = ", ".join(f"{len(frame)} {role} rows" for role, frame in frames.items())
    print(f"{path}: {fmt}, {counts}; {chosen}")
    warnings = refusals(params, frames)
    for warning in warnings:
        print(f"warning: validation would refuse: {warning}")
    header = [f"Written by `refinery init {path}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {chosen}.",
              "Every key is here with its default; run it with `refinery run --params "
              f"{output}`.", *(f"Validation would refuse: {w}" for w in warnings)]  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    notes = {"task": "one of: " + " | ".join(TASK_TYPES), "data": f"proposed by refinery init: {chosen}"}
    output.write_text(commented_params(params, header, notes), encoding="utf-8")
    print(f"wrote {output}" + (f" ({len(warnings)} warnings above: fix the data or the keys they name)"
                               if warnings else "; next: refinery run --params " + str(output)))  # fmt: skip
    return 0
