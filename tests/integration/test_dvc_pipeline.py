"""`dvc repro` in a temporary copy of the repository: every stage once, then nothing, then only the gate."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.integration.repository import STAGES, dvc, git_identity, stages_ran, tiny_repository

pytestmark = pytest.mark.integration


def test_dvc_repro_runs_each_stage_once_then_only_what_changed(tmp_path: Path, tiny_base_model: Path) -> None:
    repo, params_file = tiny_repository(tmp_path / "repo", tiny_base_model, max_steps=6)

    assert stages_ran(dvc(repo, "repro")) == STAGES
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("tiny-intent", "challenger").version) == "1"

    second = dvc(repo, "repro")
    assert stages_ran(second) == [] and "up to date" in second

    # forced with nothing changed (the whole chain, then the stage alone): every declared output
    # again, the evaluation reused, no second version
    for forced in (["-f"], ["-f", "-s"]):
        assert "register" in stages_ran(dvc(repo, "repro", *forced, "register"))
        declared = ["registration.json", "gate_report.json", "gate_report.md", "model_card.md"]
        assert [name for name in declared if not (repo / "artifacts" / name).is_file()] == []
    assert [str(v.version) for v in client.search_model_versions("name = 'tiny-intent'")] == ["1"]
    assert "version 1" in (repo / "artifacts" / "gate_report.md").read_text()

    dvc(repo, "metrics", "show")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "first run"], cwd=repo, check=True, env={**os.environ, **git_identity()}
    )

    raw = yaml.safe_load(params_file.read_text())
    raw["gate"]["thresholds"]["accuracy"] = 0.01
    params_file.write_text(yaml.safe_dump(raw))
    assert stages_ran(dvc(repo, "repro")) == ["gate", "register"]
    assert "gate.thresholds.accuracy" in dvc(repo, "params", "diff")
    assert "gate.json" in dvc(repo, "metrics", "diff", "--all")
    plots = dvc(repo, "plots", "show", "--json")
    assert "confusion_matrix.png" in plots and "predictions.csv" in plots
    assert str(client.get_model_version_by_alias("tiny-intent", "challenger").version) == "2"
