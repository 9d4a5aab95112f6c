"""`make backup` / `make restore`: register versions, back up, destroy the stack's data, restore,
and find the same versions, aliases, tags, runs and artifacts (PostgreSQL and SQLite stacks)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from infra.migrate import download_model
from infra.processes import owned_processes
from infra.stack import OWNER_ENV, Stack, owner
from tests.e2e.conftest import TeamStack, free_port

pytestmark = pytest.mark.e2e

MODEL = "backup-e2e"


def register_versions(client: MlflowClient, tmp: Path) -> None:
    """Two runs with params, metrics and files; a logged model each; two versions with tags and aliases."""
    experiment = client.create_experiment("backup-e2e")
    client.create_registered_model(MODEL, tags={"owner": "e2e"}, description="for the backup test")
    for i in (1, 2):
        run = client.create_run(experiment, run_name=f"run-{i}", tags={"attempt": str(i)})
        client.log_param(run.info.run_id, "lr", str(0.1 * i))
        client.log_metric(run.info.run_id, "accuracy", 0.5 + i / 10, step=3)
        files = tmp / f"files-{i}"
        files.mkdir()
        (files / "report.txt").write_text(f"report {i}\n")
        client.log_artifacts(run.info.run_id, str(files), artifact_path="reports")
        model = client.create_logged_model(experiment, name="model", source_run_id=run.info.run_id)
        (files / "weights.bin").write_bytes(bytes(range(256)) * i)
        client.log_model_artifacts(model.model_id, str(files))
        client.finalize_logged_model(model.model_id, "READY")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(
            MODEL, source=f"models:/{model.model_id}", run_id=run.info.run_id, tags={"gate": f"pass-{i}"},
            model_id=model.model_id,
        )  # fmt: skip
        client.set_model_version_tag(MODEL, version.version, "promotion_reason", f"because {i}")
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "previous-champion", "1")


def registry_state(client: MlflowClient, tmp: Path) -> dict[str, Any]:
    """What a user would compare: versions, their tags, aliases, runs, and artifact bytes."""
    model = client.get_registered_model(MODEL)
    state: dict[str, Any] = {"aliases": dict(model.aliases), "tags": dict(model.tags), "versions": {}}
    for version in client.search_model_versions(f"name='{MODEL}'"):
        run = client.get_run(version.run_id)
        reports = Path(client.download_artifacts(version.run_id, "reports", str(tmp / f"r{version.version}")))
        model_files = download_model(client, MODEL, str(version.version), tmp / f"m{version.version}")
        state["versions"][version.version] = {
            "tags": dict(version.tags), "source": version.source, "run": version.run_id,
            "params": run.data.params, "metrics": run.data.metrics, "run_tags": run.data.tags.get("attempt"),
            "report": (reports / "report.txt").read_text(),
            "weights": (model_files / "weights.bin").read_bytes(),
        }  # fmt: skip
    return state


def _deployment_id(team: TeamStack) -> str:
    return str(httpx.get(f"{team.stack.prefect_api_url}/deployments/name/finetune/banking77").json()["id"])


def _backup_destroy_restore(team: TeamStack, data: list[Path], *up: str) -> None:
    backup = team.home / f"backup-{team.stack.db}"
    team.make("backup", f"DIR={backup}", f"DB={team.stack.db}")
    team.make("down")
    for path in data:  # the stack's data, gone
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    done = team.make("restore", f"DIR={backup}")
    assert f"make up DB={team.stack.db}" in done.stdout
    team.make("up", f"DB={team.stack.db}", *up)


def test_backup_restore_on_postgres(stack_up: TeamStack, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=stack_up.stack.mlflow_url)
    register_versions(client, tmp_path)
    before, deployment = registry_state(client, tmp_path / "before"), _deployment_id(stack_up)
    _backup_destroy_restore(stack_up, [stack_up.stack.root / "postgres", stack_up.stack.artifacts_dir])
    assert registry_state(client, tmp_path / "after") == before
    assert _deployment_id(stack_up) == deployment  # Prefect's database came back too


@pytest.fixture
def sqlite_stack(team_stack: TeamStack) -> Iterator[TeamStack]:
    """A second stack of the session's shape on DB=sqlite, in its own directory and ports."""
    home = team_stack.home / "sqlite"
    env = {**team_stack.env, "REFINERY_DB": "sqlite", "REFINERY_STACK_DIR": str(home / "stack")}
    env.update(REFINERY_PREFECT_PORT=str(free_port()), REFINERY_MLFLOW_PORT=str(free_port()))
    stack = Stack.from_env(env)
    env.update(stack.client_env())
    team = TeamStack(stack=stack, env=env, home=home)
    try:
        yield team
    finally:
        team.run("make", "-s", "down", timeout=180)
        for name in ("postgres", "prefect", "mlflow", "deployments", "worker", "ray"):
            assert owned_processes(OWNER_ENV, owner(stack, name)) == [], name


def test_sqlite_stack_backs_up_and_restores_too(sqlite_stack: TeamStack, tmp_path: Path) -> None:
    servers = "ONLY=prefect,mlflow"  # the two SQLite stores; the served deployments and worker add nothing
    sqlite_stack.make("up", "DB=sqlite", servers)
    assert not (sqlite_stack.stack.root / "postgres.pid").exists()  # DB=sqlite: today's stack
    assert all(path.is_file() for path in sqlite_stack.stack.sqlite_files.values())
    client = MlflowClient(tracking_uri=sqlite_stack.stack.mlflow_url)
    register_versions(client, tmp_path)
    before = registry_state(client, tmp_path / "before")
    data = [*sqlite_stack.stack.sqlite_files.values(), sqlite_stack.stack.artifacts_dir]
    _backup_destroy_restore(sqlite_stack, data, servers)
    assert registry_state(client, tmp_path / "after") == before
