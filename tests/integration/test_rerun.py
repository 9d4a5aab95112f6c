"""A re-run with nothing changed: the finished training is reused and the same weights are not
registered a second time; the console says which version already holds them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.cli.main import main as refinery
from tests.integration.conftest import tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]


def test_a_rerun_reuses_the_training_and_registers_nothing_new(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = str(tiny_params(tmp_path, tiny_base_model, sample_csv))
    seconds = []
    for run in ("first", "again"):
        started = time.perf_counter()
        assert refinery(["run", "--params", params, "--workdir", str(tmp_path / run)]) == 0
        seconds.append(time.perf_counter() - started)
    shown = capsys.readouterr().out
    print(f"full run {seconds[0]:.1f} s, re-run {seconds[1]:.1f} s")
    assert "reused the finished training" in shown
    assert "version 1 of tiny-intent already holds these weights" in shown
    versions = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_model_versions(
        "name = 'tiny-intent'"
    )
    assert [v.version for v in versions] == [1] or [str(v.version) for v in versions] == ["1"]
    assert versions[0].tags["model_weights_hash"]
    # what `refinery gc` keeps for it: the cache entries it trained from
    checkpoints = [p.name for p in (tmp_path / "cache" / "checkpoints").iterdir() if p.is_dir()]
    assert [versions[0].tags["checkpoint_key"]] == checkpoints
    assert (tmp_path / "cache" / "tokenized" / versions[0].tags["tokenized_key"]).is_dir()
