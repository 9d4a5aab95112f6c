"""`make up`'s process work pool: a run of prefect.yaml's deployment with overrides that train on two
torchrun processes is picked up by the pool's worker and registered on the stack's MLflow server."""

from __future__ import annotations

import json
import subprocess

import pytest
from mlflow import MlflowClient

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import EXPERIMENT, TeamStack
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
POOL_DEPLOYMENT = "finetune/banking77-pool"  # prefect.yaml
MODEL = "tiny-intent-pool"


def test_a_pool_deployment_run_trains_on_two_torchrun_processes(stack_up: TeamStack) -> None:
    home = stack_up.home / "pool"
    home.mkdir(exist_ok=True)
    base = build_tiny_classifier(home / "tiny-base", ["x", "y"])
    banking_sample().to_csv(home / "train.csv", index=False)
    params = tiny_params(
        home, base, home / "train.csv", register={"model_name": MODEL, "experiment": EXPERIMENT}
    )
    overrides = json.dumps({"train.distributed.launcher": "torchrun", "train.distributed.processes": 2})
    run = subprocess.run(
        ["prefect", "deployment", "run", POOL_DEPLOYMENT, "--param", f"params_path={params}",
         "--param", f"overrides={overrides}", "--param", f"workdir={home / 'run'}",
         "--watch", "--watch-timeout", "600"],
        cwd=REPO_ROOT, env=stack_up.env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    client = MlflowClient(tracking_uri=stack_up.stack.mlflow_url)
    version = client.get_model_version_by_alias(MODEL, "challenger")
    assert version.tags["world_size"] == "2" and version.tags["launcher"] == "torchrun"
    assert client.get_run(version.run_id).data.params["world_size"] == "2"
