"""A sweep in MLflow: one parent run (study, data hash, space, best value and params, trial counts,
plots) and each trial a nested child run (its params, its validation metric per evaluation, its
state), so the trials compare side by side in the MLflow UI.

Runs are created and ended through an `MlflowClient`, never the fluent active run: trials may run
in threads at once (`sweep.parallel`), and each writes to its own run by id.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import RunStatus

from tasks.core.config import Params
from tasks.lineage.data import data_hashes
from tasks.registry.registration import experiment_id
from tasks.registry.tracking import effective_tracking_uri

PARENT_ATTR = "mlflow_parent_run_id"  # on the study: a resumed sweep logs to the same parent
CHILD_ATTR = "mlflow_run_id"  # on each trial
SWEEP_TAG = "refinery.sweep"  # the study name, on the parent and every child
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}


class SweepTracking:
    """The MLflow runs of one study."""

    def __init__(self, params: Params, study: optuna.Study) -> None:
        self.params, self.study = params, study
        self.uri = effective_tracking_uri(params.register_)
        self.metric = params.sweep.metric
        self.client = MlflowClient(tracking_uri=self.uri)  # by run id: safe from trial threads

    def start(self) -> str:
        """The study's parent run: created on the first start, reopened when the sweep resumes."""
        client = self.client
        parent = self.study.user_attrs.get(PARENT_ATTR)
        if parent is not None:
            client.update_run(parent, status=RunStatus.to_string(RunStatus.RUNNING))
            return str(parent)
        exp = experiment_id(client, self.params.register_.experiment)
        run = client.create_run(exp, run_name=f"sweep {self.study.study_name}",
                                tags={SWEEP_TAG: self.study.study_name})  # fmt: skip
        sweep = self.params.sweep
        for key, value in {
            "study": self.study.study_name,
            "data_hash": data_hashes(self.params.data).combined,
            "metric": sweep.metric,
            "direction": self.study.direction.name.lower(),
            "sampler": sweep.sampler,
            "pruner": sweep.pruner,
            "trials": sweep.trials,
            "parallel": sweep.parallel,
            "space": json.dumps(sweep.space, sort_keys=True),
        }.items():
            client.log_param(run.info.run_id, key, value)
        self.study.set_user_attr(PARENT_ATTR, run.info.run_id)
        return str(run.info.run_id)

    def start_trial(self, parent: str, trial: optuna.Trial, values: dict[str, Any]) -> str:
        """A child run of `parent` for `trial`, with the trial's params."""
        client = self.client
        exp = client.get_run(parent).info.experiment_id
        tags = {"mlflow.parentRunId": parent, SWEEP_TAG: self.study.study_name,
                "optuna.trial_number": str(trial.number)}  # fmt: skip
        run = client.create_run(exp, run_name=f"trial {trial.number}", tags=tags)
        for key, value in values.items():
            client.log_param(run.info.run_id, key, value)
        trial.set_user_attr(CHILD_ATTR, run.info.run_id)
        return str(run.info.run_id)

    def running_children(self, parent: str) -> dict[int, str]:
        """Trial number -> run id of `parent`'s child runs still RUNNING: a sweep killed between a
        child's creation and `start_trial` recording it on the trial leaves one the trial cannot name."""
        client = self.client
        exp = client.get_run(parent).info.experiment_id
        runs = client.search_runs(
            [exp], filter_string=f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'"
        )
        number = "optuna.trial_number"
        return {int(r.data.tags[number]): r.info.run_id for r in runs if number in r.data.tags}

    def log_evaluation(self, run_id: str, step: int, value: float) -> None:
        """The validation metric of one evaluation (step: the evaluation's number)."""
        client = self.client
        client.log_metric(run_id, f"validation_{self.metric}", value, step=step)

    def end_trial(self, run_id: str, state: str, value: float | None = None) -> None:
        """The trial's state (COMPLETE, PRUNED, FAIL, KILLED) and, when complete, its value."""
        client = self.client
        client.set_tag(run_id, "optuna.trial_state", state)
        if value is not None:
            client.log_metric(run_id, f"best_validation_{self.metric}", value)
        client.set_terminated(run_id, STATUS[state])

    def finish(self, parent: str) -> None:
        """Best value and params, trial counts and the two plots on the parent; end it."""
        trials = self.study.get_trials(deepcopy=False)
        counts = {
            state: sum(t.state.name == state for t in trials) for state in ("COMPLETE", "PRUNED", "FAIL")
        }
        client = self.client
        for state, count in counts.items():
            client.log_metric(parent, f"trials_{state.lower()}", count)
        if counts["COMPLETE"]:
            best = self.study.best_trial
            client.log_metric(parent, f"best_validation_{self.metric}", float(best.value or 0.0))
            client.set_tag(parent, "best_trial", str(best.number))
            for key, value in best.params.items():
                client.log_param(parent, f"best.{key}", value)
        with tempfile.TemporaryDirectory(prefix="refinery-sweep-plots-") as tmp:
            for path in sweep_plots(self.study, Path(tmp)):
                client.log_artifact(parent, str(path), "plots")
        client.set_terminated(parent, "FINISHED")


def sweep_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimisation history and parameter importance as PNG files (importance needs two finished
    trials that differ; with fewer it is left out)."""
    from optuna.visualization import matplotlib as plots

    drawn: list[Path] = []
    for name, draw in (("optimization_history", plots.plot_optimization_history),
                       ("param_importances", plots.plot_param_importances)):  # fmt: skip
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" and empty-legend notices
                axes = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # too few complete trials for this plot
        figure = axes.get_figure()
        if isinstance(figure, Figure):
            figure.tight_layout()
            figure.savefig(folder / f"{name}.png", dpi=100)
            drawn.append(folder / f"{name}.png")
            import matplotlib.pyplot as plt

            plt.close(figure)
    return drawn
