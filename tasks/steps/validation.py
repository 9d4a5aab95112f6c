"""The validate step: read the data files, run the task type's data contract, write the splits.

Nothing is split or written when the suite fails: the run stops with one line naming the
expectation, file, row and value (the full report is in `validation/report.md`).
"""

from __future__ import annotations

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.data.reading import read_frames
from tasks.data.splitting import write_splits
from tasks.models.base_models import registered_base
from tasks.task_types import task_type_for
from tasks.validation.report import write_report
from tasks.validation.suite import check


def run_step(params: Params, layout: RunLayout) -> dict[str, int | float]:
    """Read the data files, validate them, and only when they pass, write the splits."""
    task_type = task_type_for(params)
    registered_base(params, layout)  # a models:/ base model: the version every later step uses, pinned now
    frames = read_frames(params.data)
    result = task_type.validate(frames, params)
    write_report(result, layout.validation_json, layout.validation_md)
    check(result, params.validate_)
    write_splits(task_type.split(frames, params), layout)
    return result.statistics


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
