"""The fine-tuning pipeline as a Prefect flow: the same step functions `dvc repro` runs.

validate → tokenize → train → evaluate → compare (with the champion) → gate → register, one task
per step; the flow body holds only the order of the steps and the gate's branch.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.logging.handlers import APILogHandler
from prefect.runtime import deployment, flow_run

from tasks.cli.summary import plots_markdown, run_summary_markdown
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.core.roots import allowed_roots, path_settings, require_under_roots
from tasks.gating.decision import GateDecision, GateFailed
from tasks.registry.tracking import effective_tracking_uri
from tasks.steps import comparison, evaluation, gating, registration, tokenization, training, validation
from tasks.steps.stage import announced
from tasks.task_types import load_task_params
from tasks.training.launchers import TRAINING_LOGGER

# A Prefect global concurrency limit (1 slot, created by flows/deployments.py) that keeps two
# trainings from sharing the cores; where it does not exist (a local run) training just proceeds.
TRAINING_LIMIT = "refinery-training"


def _retry_unless_user_error(_task: Any, _run: Any, state: Any) -> bool:
    """Retry transient failures only: bad data, params or a refused gate never change on retry."""
    try:
        state.result()
    except RefineryError:
        return False
    except Exception:
        return True
    return False


# Each step logs a `StepFinished` record when it ends (`announced`): the console's one line per step.
validate_step = task(name="validate", cache_policy=NO_CACHE)(announced("validate", validation.run_step))
# The tokenized splits are cached on disk under a key of their content (data, tokenizer files,
# max_length rule, code version). That one cache serves Prefect and `dvc repro` alike; a second,
# Prefect-side cache could disagree with it, so the task itself is not cached.
tokenize_step = task(name="tokenize", cache_policy=NO_CACHE)(announced("tokenize", tokenization.run_step))
# A retry resumes from the last checkpoint of the interrupted attempt.
train_step = task(
    name="train",
    cache_policy=NO_CACHE,
    retries=1,
    retry_condition_fn=_retry_unless_user_error,
)(announced("train", training.run_step))
evaluate_step = task(name="evaluate", cache_policy=NO_CACHE)(announced("evaluate", evaluation.run_step))
# Scores the registry's `champion` on this run's test split: never cached (the champion moves).
compare_step = task(name="compare", cache_policy=NO_CACHE)(announced("compare", comparison.run_step))
gate_step = task(name="gate", cache_policy=NO_CACHE)(announced("gate", gating.run_step))
register_step = task(
    name="register",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_user_error,
)(announced("register", registration.register_step))


@contextlib.contextmanager
def ranks_logged_to_prefect() -> Iterator[None]:
    """The output of launched ranks (torchrun, Ray) in the train task's Prefect log."""
    logger, handler = logging.getLogger(TRAINING_LOGGER), APILogHandler()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def publish_generations(layout: RunLayout, rows: int) -> None:
    """causal_lm: example generations (prompt, reference, output) as a Prefect table artifact."""
    if not layout.generations_csv.is_file() or rows == 0:
        return
    table = pd.read_csv(layout.generations_csv, keep_default_na=False)
    columns = [c for c in ("prompt", "reference", "output", "not_a_label") if c in table.columns]
    off = (
        f"; {int(table['not_a_label'].sum())} of {len(table)} answers are not a label"
        if "not_a_label" in table
        else ""
    )
    create_table_artifact(
        table[columns].head(rows).to_dict("records"),
        key="finetune-generations",
        description=f"Greedy generations on held-out examples{off}",
    )


def publish_gate_report(layout: RunLayout) -> None:
    """The gate report (decision, champion comparison, lineage, promotion) as a Prefect artifact."""
    if layout.gate_report_md.is_file():
        report = layout.gate_report_md.read_text(encoding="utf-8")
        create_markdown_artifact(report, key="finetune-gate-report", description="Refinery gate report")


def publish_plots(params: Params, layout: RunLayout, run_id: str) -> None:
    """The training curve and evaluation plots logged to MLflow, shown in a Prefect artifact."""
    plots = [("Training curve", layout.training_curve_png), ("Per-class F1", layout.per_class_f1_png),
             ("Confusion matrix", layout.confusion_png)]  # fmt: skip
    found = [(title, path.relative_to(layout.root).as_posix()) for title, path in plots if path.is_file()]
    if found:
        markdown = plots_markdown(effective_tracking_uri(params.register_), run_id, found)
        create_markdown_artifact(markdown, key="finetune-plots", description="Refinery run plots (MLflow)")


# log_prints stays off: it re-routes print(), which breaks dill's stdout capture (used by `datasets`
# fingerprinting) and floods the log with bytecode listings.
@flow(name="finetune", log_prints=False)
def finetune(
    params_path: str = "params.yaml", overrides: dict[str, Any] | None = None, workdir: str | None = None
) -> dict[str, Any]:
    """Fine-tune, evaluate, gate and register a model as configured by `params_path` + `overrides`.

    `overrides` maps dotted keys to values, e.g. {"train.max_steps": 20}.
    """
    layout = RunLayout(Path(workdir or Path("runs") / str(flow_run.get_name() or "local")))
    # team mode: a run's paths stay under the serving process's REFINERY_PATH_ROOTS
    require_under_roots({"params_path": params_path, "workdir": str(layout.root)}, allowed_roots())
    params = load_task_params(params_path, overrides)
    require_under_roots(path_settings(params.as_dict()), allowed_roots())
    validate_step(params, layout)
    tokenize_step(params, layout)
    with concurrency(TRAINING_LIMIT, occupy=1, strict=False), ranks_logged_to_prefect():
        training = train_step(params, layout)
    metrics = evaluate_step(params, layout)
    publish_generations(layout, params.evaluate.examples_shown)
    compare_step(params, layout)
    decision: GateDecision = gate_step(params, layout)
    registration = register_step(params, layout, flow_run.get_id(), deployment.get_name())
    publish_gate_report(layout)
    publish_plots(params, layout, registration.run_id)
    summary = run_summary_markdown(params, metrics, decision, registration, training)
    create_markdown_artifact(summary, key="finetune-summary", description="Refinery run summary")
    if not decision.passed and params.gate.on_fail == "fail":
        raise GateFailed("gate failed: " + "; ".join(decision.reasons))
    return {
        "workdir": str(layout.root),
        "metrics": metrics,
        "train": {"reused": bool(training.get("reused", False))},
        "gate": {"passed": decision.passed, "reasons": decision.reasons},
        "registration": registration.to_dict(),
    }
