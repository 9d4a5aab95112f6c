"""`make up`'s own PostgreSQL: loopback only, one database per server, the password in one private
file and nowhere else (argv, environments, pid files, logs)."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from infra.database import DATABASES
from infra.stack import OWNER_ENV, READY_DEPLOYMENT, owner
from tests.e2e.conftest import TeamStack

pytestmark = pytest.mark.e2e


def _password(team: TeamStack) -> str:
    server = team.stack.local_postgres(team.env)
    assert server is not None
    assert stat.S_IMODE(server.passfile.stat().st_mode) == 0o600
    return server.passfile.read_text(encoding="utf-8").strip().rsplit(":", 1)[1]


def _stack_pids(team: TeamStack) -> list[int]:
    tags = {f"{OWNER_ENV}={owner(team.stack, name)}".encode() for name in ("postgres", "prefect", "mlflow")}
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = set(environ.read_bytes().split(b"\0"))
        except OSError:
            continue
        if variables & tags:
            pids.append(int(environ.parent.name))
    return pids


def test_password_is_only_in_the_password_file(stack_up: TeamStack) -> None:
    password = _password(stack_up).encode()
    assert len(password) >= 32
    pids = _stack_pids(stack_up)
    assert len(pids) >= 3  # postgres (and its children), prefect, mlflow
    for pid in pids:
        for what in ("cmdline", "environ"):
            try:
                assert password not in Path(f"/proc/{pid}/{what}").read_bytes(), f"{pid} {what}"
            except (FileNotFoundError, ProcessLookupError):
                continue  # a short-lived child that has gone
    for path in stack_up.stack.root.glob("*.*"):  # pid files and logs
        assert password not in path.read_bytes(), path


def test_servers_keep_their_state_in_their_own_databases(stack_up: TeamStack) -> None:
    server = stack_up.stack.local_postgres(stack_up.env)
    assert server is not None
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW listen_addresses")
            assert cursor.fetchone()[0] == "127.0.0.1"
            cursor.execute("SELECT datname FROM pg_database")
            assert set(DATABASES) <= {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()
    flow, name = READY_DEPLOYMENT.split("/")
    prefect = server.connect("prefect")
    mlflow = server.connect("mlflow")
    try:
        with prefect.cursor() as cursor:
            cursor.execute(  # finetune/banking77 and sweep/banking77 share the deployment name
                "SELECT count(*) FROM deployment JOIN flow ON deployment.flow_id = flow.id "
                "WHERE deployment.name = %s AND flow.name = %s",
                (name, flow),
            )
            assert cursor.fetchone()[0] == 1
        MlflowClient(tracking_uri=stack_up.stack.mlflow_url).create_experiment("where-is-this-kept")
        with mlflow.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM experiments WHERE name = 'where-is-this-kept'")
            assert cursor.fetchone()[0] == 1
    finally:
        prefect.close()
        mlflow.close()
    assert httpx.get(f"{stack_up.stack.prefect_api_url}/deployments/name/{flow}/{name}").status_code == 200
    assert not (stack_up.stack.root / "mlflow.db").exists()  # nothing fell back to SQLite
