"""Training on two CPU processes (gloo): torchrun and Ray Train through the flow, a failing rank,
a killed run that resumes. The tiny model of the other integration tests, a ~200-row sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from flows.finetune import finetune
from tasks.core.config import DistributedConfig, load_params
from tasks.core.layout import RunLayout
from tasks.steps import tokenization, training, validation
from tasks.training.launchers import RankFailed, run_torchrun
from tasks.training.resumption import SAVED_MARKER
from tests.conftest import REPO_ROOT
from tests.integration.conftest import banking_sample, tiny_params
from tests.integration.repository import STAGES, copy_repository, dvc, git_identity, stages_ran

pytestmark = pytest.mark.integration
TWO_RANKS = {"launcher": "torchrun", "processes": 2}
LEARNS = {"learning_rate": 0.02, "epochs": 3}  # the tiny model leaves chance level within 27 steps


def _registered_once(tmp_path: Path, launcher: str) -> None:
    """One MLflow run, one version, whose run records the world size, launcher and strategy."""
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    versions = client.search_model_versions("name='tiny-intent'")
    assert len(versions) == 1
    experiment = client.get_experiment_by_name("refinery-tests")
    assert experiment is not None and len(client.search_runs([experiment.experiment_id])) == 1
    run = client.get_run(versions[0].run_id)
    assert {k: run.data.params[k] for k in ("world_size", "launcher", "strategy")} == {
        "world_size": "2",
        "launcher": launcher,
        "strategy": "ddp",
    }
    assert versions[0].tags["world_size"] == "2" and versions[0].tags["launcher"] == launcher


def _trained_once(layout: RunLayout, checkpoints: Path) -> dict[str, object]:
    """The loss fell, rank 0 alone saved one model, and the summary says how many ranks trained."""
    history = pd.read_csv(layout.train_history).dropna(subset=["train_loss"])
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert sorted(p.name for p in layout.model_dir.glob("*.safetensors")) == ["model.safetensors"]
    assert len(list(checkpoints.glob("*/trained/model/model.safetensors"))) == 1
    summary: dict[str, object] = json.loads(layout.train_metrics.read_text())
    assert summary["world_size"] == 2
    return summary


@pytest.mark.usefixtures("prefect_api", "mlflow_isolated")
def test_torchrun_two_processes_train_through_the_flow(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, train={"distributed": TWO_RANKS, **LEARNS})
    result = finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    summary = _trained_once(RunLayout(tmp_path / "run"), tmp_path / "cache" / "checkpoints")
    assert summary["launcher"] == "torchrun" and result["gate"]["passed"] is True
    _registered_once(tmp_path, "torchrun")


@pytest.mark.slow  # ~70 s: Ray's start and stop
@pytest.mark.usefixtures("prefect_api", "mlflow_isolated")
def test_ray_two_workers_train_through_the_flow(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    ray = {"launcher": "ray", "processes": 2, "resources_per_worker": {"CPU": 1}}
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, train={"distributed": ray, **LEARNS})
    finetune(params_path=str(params), workdir=str(tmp_path / "run"))
    summary = _trained_once(RunLayout(tmp_path / "run"), tmp_path / "cache" / "checkpoints")
    assert summary["launcher"] == "ray"
    _registered_once(tmp_path, "ray")


def test_a_failing_rank_fails_the_launch_with_its_message_not_a_hang(tmp_path: Path) -> None:
    with pytest.raises(RankFailed, match=r"^train: rank 1 failed: ValueError: shard 7 is unreadable$"):
        run_torchrun(
            "tests.integration.failing_rank", [], DistributedConfig(**TWO_RANKS), tmp_path / "errors", "t"
        )
    failed_at = (tmp_path / "errors" / "rank-1.json").stat().st_mtime
    assert time.time() - failed_at < 30  # rank 0 waited in a barrier: torchrun stopped it, no hang


@pytest.mark.slow  # ~2 min at load 10: three torchrun starts (the killed run, the resumed run)
def test_a_killed_two_process_training_resumes_from_its_checkpoint(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    train = {"distributed": TWO_RANKS, "max_steps": 30, "batch_size": 8, "eval_strategy": "steps",
             "eval_steps": 2, "save_total_limit": 10}  # fmt: skip
    params_path = tiny_params(tmp_path, tiny_base_model, sample_csv, train=train)
    params, layout = load_params(params_path), RunLayout(tmp_path / "run")
    validation.run_step(params, layout)
    tokenization.run_step(params, layout)
    checkpoints = training.checkpoint_dir(params, layout)

    command = [sys.executable, "-m", "tasks.steps.training", "--params", str(params_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    step = subprocess.Popen(
        [*command, "--workdir", str(layout.root)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob(f"checkpoint-*/{SAVED_MARKER}")) and time.monotonic() < deadline:
        assert step.poll() is None, (
            f"the training ended before it could be killed: {list(checkpoints.parent.rglob('*'))}"
        )
        time.sleep(0.2)
    os.killpg(step.pid, signal.SIGKILL)  # the step, torchrun and both ranks
    step.wait()
    assert list(checkpoints.glob(f"checkpoint-*/{SAVED_MARKER}")) and not layout.train_metrics.exists()

    summary = training.run_step(params, layout)
    assert summary["resumed"] is True and summary["global_steps"] == 30 and summary["world_size"] == 2


@pytest.mark.slow  # dvc repro of every stage, training on two torchrun processes
def test_dvc_repro_trains_on_two_processes(tmp_path: Path, tiny_base_model: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    banking_sample().to_csv(repo / "sample.csv", index=False)
    params_file = tiny_params(
        repo, tiny_base_model, repo / "sample.csv", train={"distributed": TWO_RANKS, **LEARNS}
    )
    raw = yaml.safe_load(params_file.read_text())
    raw["tokenize"]["cache_dir"] = ".cache/refinery/tokenized"
    raw["train"]["checkpoint_dir"] = ".cache/refinery/checkpoints"
    raw["register"]["tracking_uri"] = "sqlite:///mlflow.db"
    params_file.write_text(yaml.safe_dump(raw))
    env = {**os.environ, **git_identity()}
    subprocess.run(["git", "commit", "-qam", "two ranks"], cwd=repo, check=True, env=env)

    assert stages_ran(dvc(repo, "repro")) == STAGES
    layout = RunLayout(repo / "artifacts")
    _trained_once(layout, repo / ".cache" / "refinery" / "checkpoints")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    version = client.get_model_version_by_alias("tiny-intent", "challenger")
    assert str(version.version) == "1" and version.tags["world_size"] == "2"
