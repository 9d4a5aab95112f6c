"""A hyper-parameter sweep as a Prefect flow: validate and tokenize once, search on validation only,
then send the best params through the normal pipeline (the `finetune` flow: test, compare, gate,
register), with the sweep's MLflow parent run in the registered version's lineage."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from flows.finetune import TRAINING_LIMIT, finetune, tokenize_step, validate_step
from tasks.core.files import write_json
from tasks.core.layout import RunLayout, new_run_dir
from tasks.core.roots import allowed_roots, path_settings, require_under_roots
from tasks.steps.stage import announced
from tasks.sweeps.search import SweepOutcome, default_study_name, run_search
from tasks.sweeps.space import parse_space
from tasks.task_types import load_task_params

# Prefect checks the flow's parameters with a generated pydantic model whose base class has a
# `register` attribute, and warns on every run; the parameter keeps its name (`--param register=false`).
warnings.filterwarnings("ignore", message='Field name "register" in "SweepModel"', category=UserWarning)

search_step = task(name="search", cache_policy=NO_CACHE)(announced("search", run_search))


def outcome_markdown(outcome: SweepOutcome) -> str:
    """The sweep's choice for people: best value, best params and the trial counts."""
    rows = "\n".join(f"| `{key}` | {value} |" for key, value in outcome.best_overrides.items())
    counts = ", ".join(f"{n} {state}" for state, n in outcome.counts.items())
    return (
        f"# Sweep {outcome.study}\n\nBest validation {outcome.metric}: **{outcome.best_value:.4f}** "
        f"({counts}); MLflow parent run `{outcome.parent_run_id}`.\n\n| key | value |\n|---|---|\n{rows}\n"
    )


@flow(name="sweep", log_prints=False)
def sweep(
    params_path: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
    workdir: str | None = None,
    study: str | None = None,
    register: bool = True,
) -> dict[str, Any]:
    """Search `sweep.space` (params file + dotted `overrides`), then train, gate and register the best.

    `study` names the Optuna study (the same name resumes it); `register` False stops after choosing.
    """
    layout = RunLayout(Path(workdir or Path("runs") / f"sweep-{flow_run.get_name() or 'local'}"))
    require_under_roots({"params_path": params_path, "workdir": str(layout.root)}, allowed_roots())
    params = load_task_params(params_path, overrides)
    require_under_roots(path_settings(params.as_dict()), allowed_roots())
    parse_space(params)  # a malformed space fails before any data is read
    validate_step(params, layout)
    tokenize_step(params, layout)
    with concurrency(TRAINING_LIMIT, occupy=1, strict=False):
        outcome: SweepOutcome = search_step(params, layout, study or default_study_name(layout))
    create_markdown_artifact(outcome_markdown(outcome), key="sweep-outcome", description="Refinery sweep")
    result: dict[str, Any] = {"workdir": str(layout.root), "sweep": outcome.to_dict()}
    if not register:
        return result
    winner = RunLayout(new_run_dir(layout.root, "winner-"))
    write_json(winner.sweep_json, {"study": outcome.study, "parent_run_id": outcome.parent_run_id})
    best = {**(overrides or {}), **outcome.best_overrides}
    result["finetune"] = finetune(params_path=params_path, overrides=best, workdir=str(winner.root))
    return result
