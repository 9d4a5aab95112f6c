"""`refinery reproduce` runs on exactly the recorded data or stops with one line; it says when the
working tree it runs in has uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.cli.reproduction import Recorded, require_recorded_data, workspace
from tasks.core.config import parse_params
from tasks.core.errors import RefineryError
from tasks.lineage.record import current_lineage


def _repo(tmp_path: Path) -> Path:
    """A git repository with one committed data file."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\na,x\nb,y\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "data"], check=True)
    return tmp_path


def _recorded(repo: Path, data_hash: str) -> Recorded:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    return Recorded("m", "3", "run", "0", "", head.stdout.strip(), False, data_hash, {})


PARAMS = parse_params({"data": {"train_path": "data/train.csv", "test_path": None}})


def test_reproduction_runs_here_on_the_recorded_data_and_says_when_the_tree_is_dirty(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    rec = _recorded(repo, current_lineage(PARAMS, repo_dir=repo).data_hash)
    with workspace(rec, PARAMS, repo) as (root, where):
        assert root == repo and where == "current checkout"
    (repo / "notes.txt").write_text("uncommitted")
    with workspace(rec, PARAMS, repo) as (_, where):
        assert where == "current checkout (with uncommitted changes: the code run may differ from the commit)"


def test_data_other_than_the_recorded_stops_with_one_line(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    rec = _recorded(repo, "md5:0123456789abcdef0123456789abcdef")  # trained on data from elsewhere
    with pytest.raises(RefineryError) as stopped:
        require_recorded_data(rec, PARAMS, repo)
    message = str(stopped.value)
    assert "\n" not in message and "is not the data m version 3 was trained on" in message
    assert "data.train_path 'data/train.csv'" in message
    # same commit, other data: a clone at the commit, then the check
    with (
        pytest.raises(RefineryError, match="is not the data m version 3 was trained on"),
        workspace(rec, PARAMS, repo),
    ):
        pass
