"""`refinery sweep` on a tiny model and a ~200-row sample: nested MLflow runs, pruning, the winner
registered with the sweep in its lineage, a killed sweep resumed, and no trial reading the test split."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from transformers import TrainerCallback

from flows.sweep import sweep
from tasks.core.layout import RunLayout
from tasks.data.splitting import read_splits
from tasks.steps import tokenization, validation
from tasks.sweeps.search import run_search
from tasks.sweeps.study import OWNER_ATTR, open_study, storage_url
from tasks.sweeps.tracking import SweepTracking
from tasks.task_types import load_task_params
from tests.conftest import REPO_ROOT
from tests.integration.conftest import tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]
SPACE = {
    "train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
    "train.batch_size": {"choices": [16, 32]},
}


def _params(tmp_path: Path, base: Path, csv: Path, **sweep: Any) -> Path:
    settings = {"trials": 4, "sampler": "random", "pruner": "none", "space": SPACE, **sweep}
    fast = {"max_steps": 4, "eval_strategy": "steps", "eval_steps": 2}  # two evaluations a trial
    return tiny_params(tmp_path, base, csv, sweep=settings, train=fast)


def _children(client: MlflowClient, parent: str) -> list[Any]:
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")


@pytest.mark.usefixtures("prefect_api")
def test_a_sweep_nests_its_trials_and_registers_the_winner_with_the_sweep_in_its_lineage(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    params = _params(tmp_path, tiny_base_model, sample_csv)
    result = sweep(params_path=str(params), workdir=str(tmp_path / "sweep"), study="nested")

    found = result["sweep"]
    assert found["counts"] == {"complete": 4, "pruned": 0, "fail": 0}
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(found["parent_run_id"])
    children = _children(client, parent.info.run_id)
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:  # its params, and the validation metric at each of its two evaluations
        assert set(child.data.params) == set(SPACE)
        history = client.get_metric_history(child.info.run_id, "validation_accuracy")
        assert [m.step for m in history] == [1, 2]
    assert parent.data.params["study"] == "nested" and parent.data.params["data_hash"]
    best = found["best_overrides"]
    assert float(parent.data.params["best.train.learning_rate"]) == best["train.learning_rate"]
    assert parent.data.metrics["best_validation_accuracy"] == pytest.approx(found["best_value"])
    assert parent.data.metrics["trials_complete"] == 4
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots

    version = client.get_model_version_by_alias("tiny-intent", "challenger")
    assert version.tags["sweep_run_id"] == parent.info.run_id
    winner = client.get_run(version.run_id)
    assert float(winner.data.params["train.learning_rate"]) == found["best_overrides"]["train.learning_rate"]
    assert int(winner.data.params["train.batch_size"]) == found["best_overrides"]["train.batch_size"]
    assert "test_accuracy" in winner.data.metrics  # the winner alone is scored on test


class PruneOddTrials(optuna.pruners.BasePruner):
    """A forced pruner: every odd-numbered trial is pruned at its first evaluation."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 1


class SplitProbe(TrainerCallback):
    """Looks, from inside each trial's Trainer, for any way to the test split."""

    def __init__(self, layout: RunLayout) -> None:
        self.layout = layout
        self.seen: list[dict[str, Any]] = []

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        try:
            read_splits(self.layout)
            readable = True
        except FileNotFoundError:
            readable = False
        files = [p for p in self.layout.root.rglob("*") if "test" in p.name and "trials" not in p.parts]
        rows = len(kwargs["eval_dataloader"].dataset)
        self.seen.append({"readable": readable, "files": files, "eval_rows": rows})


def test_trials_never_read_the_test_split_and_a_forced_pruner_prunes(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    params = load_task_params(_params(tmp_path, tiny_base_model, sample_csv))
    layout = RunLayout(tmp_path / "sweep")
    validation.run_step(params, layout)
    tokenization.run_step(params, layout)
    validation_rows = len(read_splits(layout).validation)
    probe = SplitProbe(layout)

    found = run_search(params, layout, "pruned", pruner=PruneOddTrials(), callbacks=[probe])

    assert len(probe.seen) == 2 * 2 + 2 * 1  # two evaluations of a complete trial, one of a pruned one
    assert all(not s["readable"] and not s["files"] and s["eval_rows"] == validation_rows for s in probe.seen)
    assert found.counts == {"complete": 2, "pruned": 2, "fail": 0}
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    children = _children(client, found.parent_run_id)
    states = sorted(c.data.tags["optuna.trial_state"] for c in children)
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    pruned = [c for c in children if c.data.tags["optuna.trial_state"] == "PRUNED"]
    assert all(len(client.get_metric_history(c.info.run_id, "validation_accuracy")) == 1 for c in pruned)


KILLABLE_SWEEP = """
import sys
from pathlib import Path
from tasks.core.layout import RunLayout
from tasks.steps import tokenization, validation
from tasks.sweeps.search import run_search
from tasks.task_types import load_task_params
params = load_task_params(sys.argv[1])
layout = RunLayout(Path(sys.argv[2]))
validation.run_step(params, layout)
tokenization.run_step(params, layout)
run_search(params, layout, "killed")
"""


def _counted(params_path: Path) -> int:
    """Complete trials of study `killed`, read without taking a write lock on the storage."""
    path = Path(storage_url(load_task_params(params_path)).removeprefix("sqlite:///"))
    if not path.is_file():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
                "WHERE study_name = 'killed' AND state = 'COMPLETE'"
            ).fetchone()
        except sqlite3.OperationalError:  # no tables yet
            return 0
    return int(count)


def test_a_killed_sweep_resumes_to_its_total(tmp_path: Path, tiny_base_model: Path, sample_csv: Path) -> None:
    params = _params(tmp_path, tiny_base_model, sample_csv, pruner="none")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = (tmp_path / "first.log").open("w")
    command = [sys.executable, "-c", KILLABLE_SWEEP, str(params), str(tmp_path / "first")]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True, stdout=log, stderr=log)
    deadline = time.monotonic() + 300
    try:
        while _counted(params) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):  # mid-trial: the third trial is left running
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    assert 2 <= _counted(params) < 4, (tmp_path / "first.log").read_text()[-3000:]

    resumed = load_task_params(params)
    layout = RunLayout(tmp_path / "resumed")
    validation.run_step(resumed, layout)
    tokenization.run_step(resumed, layout)
    found = run_search(resumed, layout, "killed")  # what `refinery sweep --study killed` runs

    assert found.counts["complete"] == 4 and _counted(params) == 4
    study = optuna.load_study(study_name="killed", storage=storage_url(resumed))
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs.get("interrupted") for t in interrupted)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    children = _children(client, found.parent_run_id)  # the resumed sweep logs to the same parent
    assert sum(c.info.status == "FINISHED" for c in children) == 4
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED"}


def test_a_trial_killed_before_it_named_its_run_has_that_run_ended_on_resume(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    """The window a kill can hit (seen once in CI): the trial's MLflow child run is created, but the
    process dies before the trial records the run's id; the resumed sweep finds it by trial number."""
    params = load_task_params(_params(tmp_path, tiny_base_model, sample_csv, trials=1))
    layout = RunLayout(tmp_path / "sweep")
    validation.run_step(params, layout)
    tokenization.run_step(params, layout)
    study = open_study(params, "window", {})
    parent = SweepTracking(params, study).start()
    trial = study.ask()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trial.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{gone.pid}")  # its sweep process is gone
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = {"mlflow.parentRunId": parent, "optuna.trial_number": str(trial.number)}
    orphan = client.create_run(client.get_run(parent).info.experiment_id, run_name="trial 0", tags=tags)

    found = run_search(params, layout, "window")

    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert found.counts["complete"] == 1 and found.parent_run_id == parent
    children = _children(client, parent)
    assert {c.info.status for c in children} == {"FINISHED", "KILLED"}


def test_parallel_trials_share_one_study(tmp_path: Path, tiny_base_model: Path, sample_csv: Path) -> None:
    params = load_task_params(_params(tmp_path, tiny_base_model, sample_csv, trials=2, parallel=2))
    layout = RunLayout(tmp_path / "sweep")
    validation.run_step(params, layout)
    tokenization.run_step(params, layout)

    found = run_search(params, layout, "parallel")

    assert found.counts == {"complete": 2, "pruned": 0, "fail": 0}
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    children = _children(client, found.parent_run_id)
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}


def test_parallel_trials_keep_accelerates_state_while_another_trial_starts(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    """What failed one parallel trial in three on a loaded machine: a second trial's
    `TrainingArguments` reset accelerate's process-wide state under the first one's Trainer."""
    from transformers import AutoModelForSequenceClassification, Trainer

    from tasks.core.config import TrainConfig
    from tasks.training.accelerator_state import shared_accelerator_state
    from tasks.training.arguments import training_arguments

    cfg = TrainConfig(base_model=str(tiny_base_model), max_steps=1, progress_bars=False, precision="fp32")

    def first_trial_then_a_second_starts(name: str) -> Trainer:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_base_model, num_labels=2)
        trainer = Trainer(model=model, args=training_arguments(cfg, tmp_path / name / "a", evaluate=False))
        assert training_arguments(cfg, tmp_path / name / "b", evaluate=False).device.type == "cpu"
        return trainer

    with shared_accelerator_state("fp32"):
        running = first_trial_then_a_second_starts("shared")
        assert str(running.accelerator.state.distributed_type) == "DistributedType.NO"
    unshared = first_trial_then_a_second_starts("unshared")  # without it, the state is gone
    with pytest.raises(AttributeError, match="distributed_type"):
        _ = unshared.accelerator.state.distributed_type
