"""`dvc repro` in a temporary copy of the repository: every stage once, then nothing, then only the gate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import REPO_ROOT
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.integration

STAGES = ["validate", "tokenize", "train", "evaluate", "gate", "register"]


def _copy_repository(target: Path) -> Path:
    """The tracked files of the working tree plus the pulled data, as a fresh git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in listed:
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    shutil.copytree(REPO_ROOT / "data", target / "data")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=target, check=True, env={**os.environ, **_git_identity()})
    return target


def _git_identity() -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _ran(output: str) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


def test_dvc_repro_runs_each_stage_once_then_only_what_changed(tmp_path: Path, tiny_base_model: Path) -> None:
    repo = _copy_repository(tmp_path / "repo")
    sample = repo / "sample.csv"
    banking_sample().to_csv(sample, index=False)
    params_file = tiny_params(repo, tiny_base_model, sample)
    raw = yaml.safe_load(params_file.read_text())
    raw["train"]["max_steps"] = 6
    raw["tokenize"]["cache_dir"] = ".cache/refinery/tokenized"
    raw["train"]["checkpoint_dir"] = ".cache/refinery/checkpoints"
    raw["register"]["tracking_uri"] = "sqlite:///mlflow.db"
    params_file.write_text(yaml.safe_dump(raw))
    subprocess.run(
        ["git", "commit", "-qam", "tiny params"], cwd=repo, check=True, env={**os.environ, **_git_identity()}
    )

    assert _ran(_dvc(repo, "repro")) == STAGES
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("tiny-intent", "challenger").version) == "1"

    second = _dvc(repo, "repro")
    assert _ran(second) == [] and "up to date" in second

    _dvc(repo, "metrics", "show")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "first run"], cwd=repo, check=True, env={**os.environ, **_git_identity()}
    )

    raw["gate"]["thresholds"]["accuracy"] = 0.01
    params_file.write_text(yaml.safe_dump(raw))
    assert _ran(_dvc(repo, "repro")) == ["gate", "register"]
    assert "gate.thresholds.accuracy" in _dvc(repo, "params", "diff")
    assert "gate.json" in _dvc(repo, "metrics", "diff", "--all")
    plots = _dvc(repo, "plots", "show", "--json")
    assert "confusion_matrix.png" in plots and "predictions.csv" in plots
    assert str(client.get_model_version_by_alias("tiny-intent", "challenger").version) == "2"
