"""A reproduction that fails while recording itself ends its MLflow run FAILED, never RUNNING."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.cli.reproduction import Recorded, log_reproduction
from tasks.core.layout import RunLayout

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]


def test_a_reproduction_whose_artifacts_cannot_be_written_ends_failed(tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact store should be\n", encoding="utf-8")
    experiment = client.create_experiment("reproductions", artifact_location=str(blocker / "artifacts"))
    layout = RunLayout(tmp_path / "run")
    layout.eval_dir.mkdir(parents=True)
    layout.eval_metrics.write_text(json.dumps({"accuracy": 0.5}), encoding="utf-8")
    rec = Recorded("tiny-intent", "1", "0" * 32, experiment, "train: {}\n", "abc", False, "md5:1", {})

    with pytest.raises(OSError):
        log_reproduction(client, rec, layout, {"accuracy": 0.5}, "current checkout")

    runs = client.search_runs([experiment])
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
