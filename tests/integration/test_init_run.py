"""A new user's first hour: `refinery init data.csv`, then `refinery run` on the file it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.cli.main import main as refinery

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]


def test_init_then_run_registers_a_model(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    assert refinery(["init", str(sample_csv), "--output", str(params)]) == 0
    assert "warning" not in capsys.readouterr().out
    # only what a test machine needs: the tiny model, stores in tmp_path, one epoch, no minimum
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = {
        "train.base_model": str(tiny_base_model),
        "train.epochs": "1",
        "train.checkpoint_dir": str(tmp_path / "checkpoints"),
        "tokenize.cache_dir": str(tmp_path / "tokenized"),
        "register.tracking_uri": store,
        "gate.thresholds": "{accuracy: 0.0}",
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    assert refinery(["run", "--params", str(params), "--workdir", str(tmp_path / "run"), *sets]) == 0
    assert "✓ register" in capsys.readouterr().out
    version = MlflowClient(tracking_uri=store).get_model_version_by_alias("train-classifier", "challenger")
    assert str(version.version) == "1"
