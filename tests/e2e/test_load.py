"""The load test, short: two trainings queued on the deployment while two readers and the
promote/rollback loop run (benchmarks/team_load.py runs the long one on both databases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import Target, run_load
from benchmarks.team_load import LOAD_GATE
from tests.e2e.conftest import TeamStack
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.e2e

MODEL = "tiny-intent-load-e2e"
EXPERIMENT = "refinery-load-e2e"


def test_reads_and_promotions_while_trainings_queue(stack_up: TeamStack, tmp_path: Path) -> None:
    base = build_tiny_classifier(tmp_path / "tiny-base", ["x", "y"])
    train_csv = tmp_path / "train.csv"
    banking_sample().to_csv(train_csv, index=False)
    register = {"model_name": MODEL, "experiment": EXPERIMENT}
    params = tiny_params(tmp_path, base, train_csv, register=register, gate=LOAD_GATE)
    stack = stack_up.stack
    target = Target(stack.prefect_api_url, stack.mlflow_url, MODEL, EXPERIMENT, stack_up.env)

    result = run_load(
        target, params, tmp_path, flow_runs=2, clients=2, duration_s=30, max_steps=8,
        flow_timeout_s=900, min_promotions=2,
    )  # fmt: skip

    operations = result["operations"]
    assert operations["total"]["errors"] == 0, result["error_samples"]
    assert set(result["flow_run_states"].values()) == {"COMPLETED"}, result["flow_run_states"]
    assert list(result["versions_per_flow_run"].values()) == [1, 1]  # exactly one version per run
    for read in ("mlflow search_runs", "mlflow search_model_versions", "prefect flow_runs/filter"):
        assert operations[read]["served"] > 0, read
    assert operations["refinery promote"]["served"] >= 2
    assert operations["refinery rollback"]["served"] >= 1
