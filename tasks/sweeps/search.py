"""The search: Optuna trials over `sweep.space`, chosen on the validation split only.

Data validation and tokenization ran once, into the sweep's run directory; the search removes its
test split (`seal_test_split`) and runs the trials (`sweep.parallel` at once, in threads that
share the cores), each a nested MLflow run of the sweep's parent. What it returns is the best
trial's values as `--set` overrides, for the normal pipeline to train, test, gate and register.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from transformers import TrainerCallback

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.sweeps.space import Dimension, parse_space, searches_tokenization, with_values
from tasks.sweeps.study import OWNER_ATTR, counted, fail_interrupted, interrupted_trials, open_study, own_name
from tasks.sweeps.tracking import CHILD_ATTR, SweepTracking
from tasks.sweeps.trial import PruningReport, run_trial, seal_test_split
from tasks.training.accelerator_state import shared_accelerator_state
from tasks.training.arguments import resolved_precision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep chose: the study, its MLflow parent run, the best trial and the trial counts."""

    study: str
    parent_run_id: str
    metric: str
    best_value: float
    best_overrides: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def cores_split(parallel: int) -> Iterator[None]:
    """Each of `parallel` trials at once gets 1/parallel of torch's threads (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _one_state_for_threads(params: Params) -> Iterator[None]:
    """Trials in threads share accelerate's process-wide state (see `shared_accelerator_state`)."""
    if params.sweep.parallel < 2:
        yield
        return
    with shared_accelerator_state(resolved_precision(params.train)):
        yield


def _objective(
    params: Params,
    layout: RunLayout,
    dimensions: list[Dimension],
    tracking: SweepTracking,
    parent: str,
    callbacks: list[TrainerCallback],
) -> Any:
    retokenize = searches_tokenization(dimensions)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(OWNER_ATTR, own_name())
        values = {d.key: d.suggest(trial) for d in dimensions}
        run_id = tracking.start_trial(parent, trial, values)
        report = PruningReport(trial, params.sweep.metric, lambda s, v: tracking.log_evaluation(run_id, s, v))
        trial_dir = layout.root / "trials" / str(trial.number)
        try:
            run_trial(with_values(params, values), layout, trial_dir, [report, *callbacks], retokenize)
            if report.pruned:
                raise optuna.TrialPruned(f"pruned at evaluation {len(report.values)}")
            if not report.values:
                raise RefineryError(f"sweep: trial {trial.number} reported no eval_{params.sweep.metric}")
        except optuna.TrialPruned:
            tracking.end_trial(run_id, "PRUNED")
            raise
        except BaseException:
            tracking.end_trial(run_id, "FAIL")
            raise
        value = min(report.values) if trial.study.direction.name == "MINIMIZE" else max(report.values)
        tracking.end_trial(run_id, "COMPLETE", value)
        return value

    return objective


def run_search(
    params: Params,
    layout: RunLayout,
    study_name: str,
    pruner: optuna.pruners.BasePruner | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> SweepOutcome:
    """Run (or resume) study `study_name` until `sweep.trials` trials count; the best trial.

    `layout` holds the validated, tokenized splits; `pruner` replaces `sweep.pruner` (tests);
    `callbacks` are added to each trial's Trainer.
    """
    dimensions = parse_space(params)
    grid = {d.key: list(d.choices) for d in dimensions if d.choices is not None}
    seal_test_split(layout)
    study = open_study(params, study_name, grid, pruner)
    tracking = SweepTracking(params, study)
    parent = tracking.start()
    stale_trials = interrupted_trials(study)
    left_running = tracking.running_children(parent) if stale_trials else {}
    for stale in stale_trials:
        fail_interrupted(study, stale)
        child = stale.user_attrs.get(CHILD_ATTR) or left_running.get(stale.number)
        if child is not None:
            tracking.end_trial(str(child), "KILLED")
    remaining = max(0, params.sweep.trials - counted(study))
    log.info("sweep %s: %d trial(s) to run of %d", study_name, remaining, params.sweep.trials)
    if remaining:
        with cores_split(params.sweep.parallel), _one_state_for_threads(params):
            study.optimize(
                _objective(params, layout, dimensions, tracking, parent, callbacks or []),
                n_trials=remaining,
                timeout=params.sweep.timeout_s,
                n_jobs=params.sweep.parallel,
                catch=(Exception,),  # a failed trial is counted and reported; the sweep goes on
            )
    tracking.finish(parent)
    return outcome(study, parent, params.sweep.metric)


def outcome(study: optuna.Study, parent: str, metric: str) -> SweepOutcome:
    """The best complete trial of `study`; one line when no trial completed."""
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in (TrialState.COMPLETE,
              TrialState.PRUNED, TrialState.FAIL)}  # fmt: skip
    if not counts["complete"]:
        raise RefineryError(
            f"sweep: no trial of study '{study.study_name}' completed ({counts['pruned']} pruned, "
            f"{counts['fail']} failed); see the MLflow run {parent}"
        )
    best = study.best_trial
    return SweepOutcome(study.study_name, parent, metric, float(best.value or 0.0), dict(best.params), counts)


def default_study_name(layout: RunLayout) -> str:
    """A new study's name when `--study` is not given: the sweep's run directory name."""
    return f"sweep-{Path(layout.root).name}"
