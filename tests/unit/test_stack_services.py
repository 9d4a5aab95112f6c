"""What `make up` would start, per database choice, without starting anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.database import LocalPostgres, as_server_user
from infra.services import Stack, StackError, services
from infra.stack import _every_service


def _names(stack: Stack, env: dict[str, str]) -> list[list[str]]:
    return [[service.name for service in wave] for wave in services(stack, env)]


def _env_of(stack: Stack, env: dict[str, str], name: str) -> dict[str, str]:
    return next(s.env for wave in services(stack, env) for s in wave if s.name == name)


def test_postgres_is_the_default_and_starts_first(tmp_path: Path) -> None:
    stack = Stack.from_env({"REFINERY_STACK_DIR": str(tmp_path), "REFINERY_POSTGRES_PORT": "6543"})
    assert stack.db == "postgres"
    assert _names(stack, {}) == [["postgres"], ["prefect", "mlflow"], ["deployments", "worker"]]
    prefect, mlflow = _env_of(stack, {}, "prefect"), _env_of(stack, {}, "mlflow")
    assert (
        prefect["PREFECT_API_DATABASE_CONNECTION_URL"]
        == "postgresql+asyncpg://refinery@127.0.0.1:6543/prefect"
    )
    assert mlflow["MLFLOW_BACKEND_STORE_URI"] == "postgresql+psycopg2://refinery@127.0.0.1:6543/mlflow"
    assert prefect["PGPASSFILE"] == mlflow["PGPASSFILE"] == str(tmp_path / "postgres" / "pgpass")


def test_sqlite_keeps_the_files_in_the_stack_dir(tmp_path: Path) -> None:
    stack = Stack.from_env({"REFINERY_STACK_DIR": str(tmp_path), "REFINERY_DB": "sqlite"})
    assert _names(stack, {}) == [["prefect", "mlflow"], ["deployments", "worker"]]
    assert _env_of(stack, {}, "mlflow")["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_two_urls_mean_existing_servers_and_no_local_postgres(tmp_path: Path) -> None:
    urls = {
        "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@db.example/prefect",
        "MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg2://u@db.example/mlflow",
    }
    stack = Stack.from_env({"REFINERY_STACK_DIR": str(tmp_path)})
    assert _names(stack, urls) == [["prefect", "mlflow"], ["deployments", "worker"]]
    assert _env_of(stack, urls, "mlflow")["MLFLOW_BACKEND_STORE_URI"] == urls["MLFLOW_BACKEND_STORE_URI"]


def test_no_command_line_carries_a_store_url(tmp_path: Path) -> None:
    stack = Stack.from_env({"REFINERY_STACK_DIR": str(tmp_path)})
    for wave in services(stack, {}):
        for service in wave:
            assert not any("postgresql" in part or "sqlite" in part for part in service.command), service.name


def test_an_unknown_database_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"REFINERY_DB .*'mysql' is not one of postgres, sqlite"):
        Stack.from_env({"REFINERY_STACK_DIR": str(tmp_path), "REFINERY_DB": "mysql"})


def test_the_password_file_is_private_and_stable(tmp_path: Path) -> None:
    server = LocalPostgres(root=tmp_path / "pg", port=6543, bin=tmp_path)
    server.root.mkdir()
    first = server._password()
    assert len(first) >= 32 and ":" not in first
    assert server.passfile.stat().st_mode & 0o777 == 0o600
    assert server._password() == first
    assert server.url("mlflow") == "postgresql://refinery@127.0.0.1:6543/mlflow"  # no password in it


def test_postgres_never_runs_as_root() -> None:
    command = as_server_user(["postgres", "-D", "data"])
    assert command[-3:] == ["postgres", "-D", "data"]
    assert (command[0].endswith("unshare")) == (os.geteuid() == 0)


def test_ray_1_adds_a_ray_head_on_localhost_that_down_also_knows(tmp_path: Path) -> None:
    stack = Stack.from_env({"REFINERY_STACK_DIR": str(tmp_path), "REFINERY_DB": "sqlite"})
    assert _names(stack, {"RAY": "1"}) == [["prefect", "mlflow", "ray"], ["deployments", "worker"]]
    head = next(s for wave in services(stack, {"RAY": "1"}) for s in wave if s.name == "ray")
    assert "--node-ip-address=127.0.0.1" in head.command and "--block" in head.command
    assert "ray" in {s.name for s in _every_service(stack)}  # `make down` stops it without RAY=1
    worker = _env_of(stack, {}, "worker")
    assert worker["PREFECT_API_URL"] == stack.prefect_api_url


def test_make_up_only_refuses_an_unknown_service_in_one_line_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.stack import main

    monkeypatch.setenv("REFINERY_STACK_DIR", str(tmp_path / "stack"))
    monkeypatch.setenv("REFINERY_DB", "sqlite")
    assert main(["up", "--only", "mlflow,prefetc"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ONLY: unknown service(s) prefetc; choose from ") and "\n" not in error
    assert "mlflow" in error and not (tmp_path / "stack").exists()
