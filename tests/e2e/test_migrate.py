"""From the laptop to the team: what `refinery run` registered in a local SQLite store (and its
mlruns/ artifacts) reaches the team's MLflow server with `make publish-to-team`, once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from infra.migrate import SOURCE_VERSION, download_model
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import TeamStack
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.e2e

MODEL = "tiny-intent-laptop"
EXPERIMENT = "refinery-laptop"


def _laptop(team: TeamStack, *args: str, cwd: Path) -> None:
    """`refinery …` as on a laptop: no servers, the params' sqlite:/// store, artifacts in cwd/mlruns."""
    env = {k: v for k, v in team.env.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PREFECT_HOME"] = str(cwd / "prefect")
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def _files(client: MlflowClient, version: str, into: Path) -> dict[str, int]:
    root = download_model(client, MODEL, version, into)
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_publish_to_team_copies_versions_aliases_runs_and_artifacts_once(
    stack_up: TeamStack, tmp_path: Path
) -> None:
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    base = build_tiny_classifier(laptop / "tiny-base", ["x", "y"])
    banking_sample().to_csv(laptop / "train.csv", index=False)
    params = tiny_params(
        laptop, base, laptop / "train.csv", register={"model_name": MODEL, "experiment": EXPERIMENT}
    )
    _laptop(stack_up, "run", "--params", str(params), "--workdir", str(laptop / "run"), cwd=laptop)
    _laptop(stack_up, "promote", MODEL, "--version", "1", "--reason", "laptop", cwd=laptop)
    local_uri = f"sqlite:///{laptop / 'mlflow.db'}"
    assert (laptop / "mlruns").is_dir()  # the artifacts `make run` leaves beside mlflow.db

    team_uri = stack_up.stack.mlflow_url
    first = stack_up.make("publish-to-team", f"FROM={local_uri}", f"TO={team_uri}").stdout
    assert "versions: 1 copied" in first, first
    again = stack_up.make("publish-to-team", f"FROM={local_uri}", f"TO={team_uri}").stdout
    assert "versions: 0 copied, 1 already there" in again, again

    local, team = MlflowClient(local_uri, local_uri), MlflowClient(team_uri, team_uri)
    [source] = local.search_model_versions(f"name='{MODEL}'")
    [copy] = team.search_model_versions(f"name='{MODEL}'")  # one, after two calls
    assert {k: v for k, v in copy.tags.items() if k != SOURCE_VERSION} == source.tags
    assert dict(team.get_registered_model(MODEL).aliases) == {
        "champion": copy.version,
        "challenger": copy.version,
    }
    source_run, copy_run = local.get_run(source.run_id), team.get_run(copy.run_id)
    assert copy_run.data.params == source_run.data.params
    assert copy_run.data.metrics == source_run.data.metrics
    assert copy_run.info.status == source_run.info.status == "FINISHED"
    for key in source_run.data.metrics:
        assert len(team.get_metric_history(copy.run_id, key)) == len(
            local.get_metric_history(source.run_id, key)
        )
    assert {a.path for a in team.list_artifacts(copy.run_id)} == {
        a.path for a in local.list_artifacts(source.run_id)
    }
    experiment = team.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None and len(team.search_runs([experiment.experiment_id])) == 1
    champion = str(team.get_model_version_by_alias(MODEL, "champion").version)
    model_files = _files(team, champion, tmp_path / "team-model")
    assert model_files == _files(local, "1", tmp_path / "laptop-model")
    assert "MLmodel" in model_files
