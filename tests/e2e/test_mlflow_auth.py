"""MLflow's basic-auth app (`mlflow server --app-name basic-auth`, as the team stack's
REFINERY_MLFLOW_APP=basic-auth starts it): no credentials, no access; a Refinery registration with
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in its environment works and never shows the
password (not in its arguments, output, run directory or the MLflow run)."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
import yaml
from mlflow import MlflowClient

from tasks.gating.decision import GateDecision
from tests.faults.conftest import MlflowServer, child_env
from tests.integration.conftest import build_run_dir

pytestmark = pytest.mark.e2e

PASSWORD = f"pw-{secrets.token_hex(12)}"
PASSED = GateDecision(True, ["accuracy 0.9000 >= 0.5000"], {"accuracy": {"value": 0.9, "threshold": 0.5}})
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[MlflowServer]:
    root = tmp_path / "mlflow-auth"
    root.mkdir()
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'users.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        encoding="utf-8",
    )
    ini.chmod(0o600)
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,  # the first admin's, as infra/README.md sets it
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    server = MlflowServer(root, app_name="basic-auth", env=env)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _status(uri: str, user: str | None = None, password: str | None = None) -> int:
    request = Request(uri + SEARCH)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except HTTPError as refused:
        return refused.code


def test_basic_auth_refuses_anonymous_requests_and_registers_with_credentials_from_the_environment(
    tmp_path: Path, auth_server: MlflowServer
) -> None:
    started = time.monotonic()
    assert _status(auth_server.uri) == 401
    assert _status(auth_server.uri, "admin", "wrong") == 401
    assert _status(auth_server.uri, "admin", PASSWORD) == 200

    layout = build_run_dir(tmp_path / "run", PASSED)
    params = tmp_path / "params.yaml"
    raw = {"register": {"model_name": "tiny-intent", "experiment": "auth", "tracking_uri": auth_server.uri}}
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    command = [sys.executable, "-m", "tasks.steps.registration", "--params", str(params)]
    command += ["--workdir", str(layout.root)]
    anonymous = subprocess.run(command, cwd=tmp_path, env=child_env(), capture_output=True, text=True)
    assert anonymous.returncode == 1 and not layout.registration_json.exists()

    creds = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    done = subprocess.run(command, cwd=tmp_path, env=child_env(**creds), capture_output=True, text=True)
    print(f"basic-auth server checks and two registrations: {time.monotonic() - started:.1f} s")

    assert done.returncode == 0, done.stderr[-3000:]
    assert PASSWORD not in " ".join(command) + done.stdout + done.stderr + anonymous.stderr
    for path in layout.root.rglob("*"):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path
    client = MlflowClient(tracking_uri=auth_server.uri)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        env.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        versions = client.search_model_versions("name = 'tiny-intent'")
        assert [str(v.version) for v in versions] == ["1"]
        run = client.get_run(versions[0].run_id or "")
    assert PASSWORD not in str(run.data.params) + str(run.data.tags)
