"""A temporary copy of the repository as a git + DVC project, and running `dvc` in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

STAGES = ["validate", "tokenize", "train", "evaluate", "compare", "gate", "register"]


def copy_repository(target: Path) -> Path:
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
        subprocess.run(command, cwd=target, check=True, env={**os.environ, **git_identity()})
    return target


def git_identity() -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def stages_ran(output: str) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


def tiny_repository(target: Path, tiny_base_model: Path, max_steps: int) -> tuple[Path, Path]:
    """A copy of the repository whose params.yaml trains the tiny model on a BANKING77 sample for
    `max_steps`, with caches and the MLflow store inside it, committed; the copy and its params."""
    import yaml

    from tests.integration.conftest import banking_sample, tiny_params

    repo = copy_repository(target)
    sample = repo / "sample.csv"
    banking_sample().to_csv(sample, index=False)
    params_file = tiny_params(repo, tiny_base_model, sample)
    raw = yaml.safe_load(params_file.read_text())
    raw["train"]["max_steps"] = max_steps
    raw["tokenize"]["cache_dir"] = ".cache/refinery/tokenized"
    raw["train"]["checkpoint_dir"] = ".cache/refinery/checkpoints"
    raw["register"]["tracking_uri"] = "sqlite:///mlflow.db"
    params_file.write_text(yaml.safe_dump(raw))
    subprocess.run(
        ["git", "commit", "-qam", "tiny params"], cwd=repo, check=True, env={**os.environ, **git_identity()}
    )
    return repo, params_file
