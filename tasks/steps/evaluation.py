"""The evaluate step: score the trained model on the test split; `eval/metrics.json` for the gate.

A re-run whose model weights, test split, evaluation params and code are unchanged copies the
evaluation it finished before (`evaluate.cache_dir`), without loading the model.
"""

from __future__ import annotations

import inspect
import logging
from importlib.metadata import version
from pathlib import Path

from tasks.core.config import Params
from tasks.core.files import read_json, write_json
from tasks.core.hashing import code_version, fingerprint_files
from tasks.core.layout import RunLayout
from tasks.core.results import content_key, keep_result, restore_result
from tasks.models.base_models import tokenizer_fingerprint, weights_fingerprint
from tasks.steps.stage import STEP_LOGGER
from tasks.task_types import TaskType, task_type_for

EVALUATIONS = "evaluate"  # the evaluations' folder under `evaluate.cache_dir`
KEY_FILE = "reuse_key.txt"  # in eval/: the key the evaluation was made (or reused) under
# the params sections that shape an evaluation
_SCORED_BY = ("task", "sft", "preference", "multi_label", "token_classification", "tokenize", "evaluate")
_METRICS_CODE = Path(__file__).parents[1] / "metrics"
log = logging.getLogger(STEP_LOGGER)


def evaluation_code(task_type: TaskType) -> str:
    """A version of the code that scores a model: the task type's package, the metrics, this step."""
    package = Path(inspect.getfile(type(task_type))).parent
    sources = [*sorted(package.rglob("*.py")), *sorted(_METRICS_CODE.rglob("*.py")), Path(__file__)]
    return code_version(*sources)


def evaluation_key(params: Params, layout: RunLayout) -> str:
    """What makes two evaluations the same: the model's weights and tokenizer, the test split and
    labels, the params that shape scoring, the code and library versions."""
    settings = {name: value for name, value in params.as_dict().items() if name in _SCORED_BY}
    settings["evaluate"] = {k: v for k, v in settings["evaluate"].items() if k != "cache_dir"}
    return content_key(
        settings,
        weights_fingerprint(layout.model_dir),
        tokenizer_fingerprint(layout.model_dir),
        fingerprint_files(layout.splits_dir, ["test.parquet", "labels.json"]),
        evaluation_code(task_type_for(params)),
        [version(name) for name in ("torch", "transformers", "mlflow")],
    )


def recorded_key(params: Params, layout: RunLayout) -> str:
    """The key the run's evaluation was made under (computed again for an older run directory)."""
    path = layout.eval_dir / KEY_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else evaluation_key(params, layout)


def run_step(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the trained model on the test split (or reuse the same evaluation); write the task
    type's tables and the metrics."""
    key = evaluation_key(params, layout)
    cache = Path(params.evaluate.cache_dir) / EVALUATIONS
    if restore_result(cache, key, layout.eval_dir):
        log.info("evaluate: reused evaluation %s (same weights, test split, params and code)", key)
        metrics: dict[str, float] = read_json(layout.eval_metrics)
        return metrics
    metrics = task_type_for(params).evaluate(params, layout)
    write_json(layout.eval_metrics, metrics)  # a DVC metric, read by the gate
    (layout.eval_dir / KEY_FILE).write_text(key + "\n", encoding="utf-8")
    keep_result(cache, key, layout.eval_dir)
    return metrics


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
