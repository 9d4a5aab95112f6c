"""The evaluate step: score the trained model on the test split; `eval/metrics.json` for the gate."""

from __future__ import annotations

from tasks.core.config import Params
from tasks.core.files import write_json
from tasks.core.layout import RunLayout
from tasks.task_types import task_type_for


def run_step(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the trained model on the test split; write the task type's tables and the metrics."""
    metrics = task_type_for(params).evaluate(params, layout)
    write_json(layout.eval_metrics, metrics)  # a DVC metric, read by the gate
    return metrics


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
