"""The validate step: read the data files, run the task type's data contract, write the splits.

Nothing is split or written when the suite fails: the run stops with one line naming the
expectation, file, row and value (the full report is in `validation/report.md`).

A re-run whose data (the frames as read, cell by cell), validation-shaping params and code are
unchanged reuses the report it finished before (under `evaluate.cache_dir`, beside the finished
evaluations and comparisons) without loading Great Expectations; the splits are written again
from the frames, by the same seeded rule.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from tasks.core.config import Params
from tasks.core.hashing import code_version, fingerprint_files
from tasks.core.layout import RunLayout
from tasks.core.results import content_key, keep_result, restore_result
from tasks.data.reading import read_frames
from tasks.data.splitting import write_splits
from tasks.models.base_models import TOKENIZER_FILES, base_model_dir, registered_base
from tasks.steps.stage import STEP_LOGGER
from tasks.task_types import TaskType, task_type_for
from tasks.validation.report import ValidationResult, check, write_report

VALIDATIONS = "validate"  # the validations' folder under `evaluate.cache_dir`
# the params sections that shape a validation (train.base_model too, for task types that read it)
_SHAPED_BY = (
    "task",
    "data",
    "validate",
    "sft",
    "preference",
    "multi_label",
    "token_classification",
    "tokenize",
)
_SHARED_CODE = [Path(__file__).parents[1] / name for name in ("validation", "data")]
log = logging.getLogger(STEP_LOGGER)


def validation_code(task_type: TaskType) -> str:
    """A version of the code that judges data: the task type's package, the shared suite, the
    readers and splitters, the params model and this step."""
    package = Path(inspect.getfile(type(task_type))).parent
    sources = [*sorted(package.rglob("*.py"))]
    for folder in _SHARED_CODE:
        sources += sorted(folder.rglob("*.py"))
    sources += [Path(__file__).parents[1] / "core" / "config.py", Path(__file__)]
    return code_version(*sources)


def _cells_hash(frame: pd.DataFrame) -> bytes:
    """pandas' hash of every cell; cells pandas cannot hash (lists, dicts of a nested JSONL or Parquet
    column, which the data contract then refuses) by their repr, which keeps None apart from "None"."""
    try:
        return pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
    except (TypeError, ValueError):
        shown = frame.apply(lambda column: column.map(repr) if column.dtype == object else column)
        return pd.util.hash_pandas_object(shown, index=True).to_numpy().tobytes()


def frames_fingerprint(frames: dict[str, pd.DataFrame]) -> list[list[str]]:
    """Each frame's role, columns, dtypes and a hash of every cell (with `source_file`/`source_row`,
    so a moved row is another input)."""
    hashed = []
    for role, frame in sorted(frames.items()):
        cells = _cells_hash(frame)
        cells_hash = hashlib.sha256(cells).hexdigest()
        hashed.append([role, *map(str, frame.columns), *map(str, frame.dtypes), cells_hash])
    return hashed


def validation_key(frames: dict[str, pd.DataFrame], params: Params, layout: RunLayout) -> str:
    """What makes two validations the same: the data as read, the labels file's bytes, the params and
    code that judge it, the library versions and, where the contract reads it, the base model's
    tokenizer and config."""
    task_type = task_type_for(params)
    settings = {name: value for name, value in params.as_dict().items() if name in _SHAPED_BY}
    libraries = ["great_expectations", "pandas"]
    labels = params.data.labels_path  # the known label set (classification): read by the contract
    known = fingerprint_files(Path(labels).parent, [Path(labels).name]) if labels else ""
    model = ""
    if task_type.validation_reads_model:
        settings["base_model"] = params.train.base_model
        model = fingerprint_files(base_model_dir(params, layout), [*TOKENIZER_FILES, "config.json"])
        libraries += ["transformers", "tokenizers"]
    return content_key(
        settings,
        frames_fingerprint(frames),
        known,
        model,
        validation_code(task_type),
        [version(name) for name in libraries],
    )


def run_step(params: Params, layout: RunLayout) -> dict[str, int | float]:
    """Read the data files, validate them (or reuse the same validation), and only when they pass,
    write the splits."""
    task_type = task_type_for(params)
    registered_base(params, layout)  # a models:/ base model: the version every later step uses, pinned now
    frames = read_frames(params.data)
    key = validation_key(frames, params, layout)
    cache = Path(params.evaluate.cache_dir) / VALIDATIONS
    if restore_result(cache, key, layout.validation_dir):
        log.info("validate: reused validation %s (same data, params and code)", key)
        result = ValidationResult.from_json(layout.validation_json.read_text(encoding="utf-8"))
    else:
        result = task_type.validate(frames, params)
        write_report(result, layout.validation_json, layout.validation_md)
        keep_result(cache, key, layout.validation_dir)
    check(result, params.validate_)
    write_splits(task_type.split(frames, params), layout)
    return result.statistics


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
