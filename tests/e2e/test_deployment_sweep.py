"""A sweep in team mode, as the README shows it: `prefect deployment run 'sweep/banking77'` on the
served deployment searches, then sends only the winner to the gate and the registry; `refinery sweep`
from a team member's shell resumes the same study to a larger total and, with `--no-register`,
registers nothing. (Named to run right after test_database.py, on the stack it leaves running.)"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.e2e.conftest import TeamStack
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.e2e

MODEL = "tiny-intent-sweep-e2e"
EXPERIMENT = "refinery-sweep-e2e"
STUDY = "e2e-sweep"


def test_sweep_deployment_registers_the_winner_and_the_cli_resumes_its_study(
    stack_up: TeamStack, tmp_path: Path
) -> None:
    base = build_tiny_classifier(tmp_path / "tiny-base", ["x", "y"])
    train_csv = tmp_path / "train.csv"
    banking_sample().to_csv(train_csv, index=False)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    space = {
        "train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
        "train.batch_size": {"choices": [16, 32]},
    }
    params = tiny_params(
        tmp_path, base, train_csv,
        register={"model_name": MODEL, "experiment": EXPERIMENT},
        train={"max_steps": 4, "eval_strategy": "steps", "eval_steps": 2},
        sweep={"trials": 2, "sampler": "random", "pruner": "none", "storage": storage, "space": space},
    )  # fmt: skip

    served = stack_up.run(
        "prefect", "deployment", "run", "sweep/banking77", "--param", f"params_path={params}",
        "--param", f"study={STUDY}", "--param", f"workdir={tmp_path / 'served'}",
        "--watch", "--watch-timeout", "600", timeout=900,
    )  # fmt: skip
    assert served.returncode == 0, (served.stdout + served.stderr)[-3000:]
    assert "Completed" in served.stdout, served.stdout[-3000:]

    client = MlflowClient(tracking_uri=stack_up.stack.mlflow_url)
    (version,) = client.search_model_versions(f"name='{MODEL}'")  # the winner, and only the winner
    parent = client.get_run(str(version.tags["sweep_run_id"]))
    assert parent.data.params["study"] == STUDY and parent.data.metrics["trials_complete"] == 2
    winner = client.get_run(str(version.run_id))
    best = float(parent.data.params["best.train.learning_rate"])
    assert float(winner.data.params["train.learning_rate"]) == pytest.approx(best)
    assert "test_accuracy" in winner.data.metrics

    resumed = stack_up.run(
        "refinery", "sweep", "--params", str(params), "--study", STUDY, "--trials", "3", "--no-register",
        "--workdir", str(tmp_path / "resumed"), timeout=900,
    )  # fmt: skip
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert f"Sweep {STUDY}: 3 complete" in resumed.stdout, resumed.stdout[-3000:]

    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3  # two served, one from the shell
    experiment = parent.info.experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 3  # the resumed sweep's parent too
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1  # --no-register registered nothing
