"""infra/docker-compose.yml agrees with the code: ports, service URLs, databases, volumes, auth switch.

Docker cannot run in CI; these checks read the file as Compose would and compare it with what
infra/stack.py, flows/deployments.py and the MLflow/Prefect versions in use expect.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack import MLFLOW_PORT, PREFECT_PORT
from tests.conftest import REPO_ROOT

INFRA = REPO_ROOT / "infra"
PORT_MAPPING = re.compile(r"^127\.0\.0\.1:\$\{(?P<var>\w+):-(?P<default>\d+)\}:(?P<container>\d+)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((INFRA / "docker-compose.yml").read_text(encoding="utf-8"))
    return loaded


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _resolved(text: str) -> str:
    """A `${VAR:-default}` interpolation as Compose resolves it with VAR unset; a required
    `${VAR:?message}` as the placeholder `<VAR>`."""
    text = re.sub(r"\$\{(\w+):\?[^}]*\}", r"<\1>", text)
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def test_passwords_have_no_default_and_compose_refuses_to_start_without_them() -> None:
    text = (INFRA / "docker-compose.yml").read_text(encoding="utf-8")
    uses = re.findall(r"\$\{POSTGRES_PASSWORD(:?[-?])?([^}]*)\}", text)
    assert len(uses) == 3 and all(kind == ":?" and "POSTGRES_PASSWORD" in why for kind, why in uses)
    assert not re.search(r"\$\{\w*PASSWORD\w*:-[^}]+\}", text)  # never a default password


def test_deployment_runs_are_limited_to_the_data_cache_and_runs_folders(compose: dict[str, Any]) -> None:
    env = _service(compose, "deployments")["environment"]
    roots = env["REFINERY_PATH_ROOTS"].split(":")
    volumes = [v.split(":")[1] for v in _service(compose, "deployments")["volumes"]]
    assert set(volumes) <= set(roots) and "/app/data" in roots and "/app/params.yaml" in roots


def test_the_four_services_of_the_team_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "mlflow", "prefect", "deployments"}
    deployments = _service(compose, "deployments")
    assert deployments["command"] == ["python", "-m", "flows.deployments"]
    assert (REPO_ROOT / "flows" / "deployments.py").is_file()
    assert (REPO_ROOT / deployments["build"]["context"].replace("..", ".")).resolve() == REPO_ROOT
    assert (INFRA / Path(deployments["build"]["dockerfile"]).name).is_file()


@pytest.mark.parametrize(
    ("name", "port", "variable"),
    [("prefect", PREFECT_PORT, "REFINERY_PREFECT_PORT"), ("mlflow", MLFLOW_PORT, "REFINERY_MLFLOW_PORT")],
)
def test_ports_match_the_local_stack_and_bind_localhost_only(
    compose: dict[str, Any], name: str, port: int, variable: str
) -> None:
    (mapping,) = _service(compose, name)["ports"]
    match = PORT_MAPPING.match(mapping)
    assert match, mapping  # 127.0.0.1 only, host port overridable like `make up`'s
    assert match["var"] == variable and int(match["default"]) == port and int(match["container"]) == port


def test_deployments_reach_the_servers_by_service_name(compose: dict[str, Any]) -> None:
    env = _service(compose, "deployments")["environment"]
    assert env["PREFECT_API_URL"] == f"http://prefect:{PREFECT_PORT}/api"
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{MLFLOW_PORT}"
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(env)
    assert env["HF_HUB_OFFLINE"] == "1"
    depends = _service(compose, "deployments")["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == {
        "prefect": "service_healthy",
        "mlflow": "service_healthy",
    }
    # the MLflow server answers requests addressed to its service name
    allowed = _service(compose, "mlflow")["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert f"mlflow:{MLFLOW_PORT}" in allowed and "localhost:*" in allowed


def test_both_servers_use_the_postgres_service(compose: dict[str, Any]) -> None:
    postgres = _service(compose, "postgres")["environment"]
    user, password = postgres["POSTGRES_USER"], _resolved(postgres["POSTGRES_PASSWORD"])
    mlflow_db = _resolved(_service(compose, "mlflow")["environment"]["MLFLOW_BACKEND_STORE_URI"])
    prefect_db = _resolved(_service(compose, "prefect")["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert mlflow_db == f"postgresql+psycopg2://{user}:{password}@postgres:5432/{postgres['POSTGRES_DB']}"
    assert prefect_db == f"postgresql+asyncpg://{user}:{password}@postgres:5432/prefect"
    assert "CREATE DATABASE prefect" in (INFRA / "postgres" / "init.sql").read_text(encoding="utf-8")
    for server in ("mlflow", "prefect"):
        assert _service(compose, server)["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_prefect_image_is_the_installed_prefect(compose: dict[str, Any]) -> None:
    image = _service(compose, "prefect")["image"]
    assert image.startswith(f"prefecthq/prefect:{version('prefect')}-"), image
    assert _service(compose, "prefect")["command"][-2:] == ["--port", str(PREFECT_PORT)]


def test_volumes_hold_state_and_artifacts(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    mounts: dict[str, str] = {}
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name}: bind mount {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                mounts[target] = source
    used = set(mounts.values())
    assert used == declared  # no declared volume unused
    command = " ".join(_service(compose, "mlflow")["command"])
    artifacts = re.search(r"--artifacts-destination (\S+)", command)
    assert "--serve-artifacts" in command and artifacts and artifacts[1] in mounts
    assert {"/var/lib/postgresql/data", "/app/runs", "/app/.cache"} <= set(mounts)


def _mlflow_arguments(compose: dict[str, Any], app: str | None) -> list[str]:
    """The arguments the mlflow service's shell command passes to `mlflow server`."""
    shell, flag, script = _service(compose, "mlflow")["command"]
    assert (shell, flag) == ("sh", "-c")
    script = script.replace("$$", "$").replace("exec mlflow server", 'printf "%s\\n"')
    env = {"REFINERY_MLFLOW_APP": app} if app is not None else {}
    done = subprocess.run([shell, flag, script], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_basic_auth_is_switched_by_one_variable(compose: dict[str, Any]) -> None:
    open_server = _mlflow_arguments(compose, None)
    assert "--app-name" not in open_server and _mlflow_arguments(compose, "") == open_server
    assert _mlflow_arguments(compose, "basic-auth") == [*open_server, "--app-name", "basic-auth"]
    assert _service(compose, "mlflow")["environment"]["REFINERY_MLFLOW_APP"] == "${REFINERY_MLFLOW_APP:-}"

    env = _service(compose, "mlflow")["environment"]
    mounts = dict(m.split(":")[1::-1] for m in _service(compose, "mlflow")["volumes"])
    ini_source = mounts[env["MLFLOW_AUTH_CONFIG_PATH"]]
    config = configparser.ConfigParser()
    config.read(INFRA / ini_source)
    store = config["mlflow"]["database_uri"].removeprefix("sqlite:///")
    assert any(store.startswith(target + "/") for target in mounts), store  # users survive restarts
    assert {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= set(env)
