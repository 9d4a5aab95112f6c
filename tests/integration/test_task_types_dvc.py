"""`dvc repro` of the newer task types, one after the other in one repository copy: text pairs,
regression, multi-label and token classification, each from its example params file (tiny model,
capped data): every stage runs, the task's metric is a DVC metric, and its version is registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.repository import STAGES, copy_repository, dvc, stages_ran
from tests.integration.task_examples import EXAMPLES, example_params

pytestmark = pytest.mark.integration


def test_dvc_repro_runs_each_newer_task_type(tmp_path: Path, tiny_base_model: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    for name, metric in EXAMPLES.items():
        example_params(name, repo, tiny_base_model, data_root=repo)
        assert stages_ran(dvc(repo, "repro")) == STAGES, name
        metrics = json.loads((repo / "artifacts" / "eval" / "metrics.json").read_text())
        assert metric in metrics and metric in dvc(repo, "metrics", "show"), (name, metrics)
        version = client.get_model_version_by_alias(f"tiny-{Path(name).stem}", "challenger")
        recorded = client.get_run(str(version.run_id)).data
        assert recorded.metrics[f"test_{metric}"] == pytest.approx(metrics[metric]), name
    again = dvc(repo, "repro")
    assert stages_ran(again) == [] and "up to date" in again
