"""Team mode: a deployment run's paths stay under the configured roots; database passwords stay
out of process arguments and pid files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.stack import Stack, services
from tasks.core.config import ConfigError, parse_params
from tasks.core.roots import ROOTS_ENV, allowed_roots, path_settings, require_under_roots

SECRET = "s3cret-Pa55"


def _roots(tmp_path: Path) -> list[Path]:
    for name in ("data", "cache", "runs"):
        (tmp_path / name).mkdir()
    roots = allowed_roots({ROOTS_ENV: ":".join(str(tmp_path / n) for n in ("data", "cache", "runs"))})
    assert roots is not None
    return roots


def test_every_path_setting_of_the_params_is_checked() -> None:
    params = parse_params({"data": {"train_path": "d/train.csv", "test_path": None}})
    found = path_settings(params.as_dict())
    assert found["data.train_path"] == "d/train.csv" and "data.test_path" not in found
    assert {"tokenize.cache_dir", "train.checkpoint_dir"} <= set(found)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("data.train_path", "/etc/passwd"),
        ("train.checkpoint_dir", "{root}/runs/../../elsewhere"),  # `..` out of a root
        ("tokenize.cache_dir", "{root}/data/link-out/cache"),  # a symlink out of a root
    ],
)
def test_a_path_outside_the_roots_is_refused_in_one_line(tmp_path: Path, key: str, value: str) -> None:
    roots = _roots(tmp_path)
    (tmp_path / "data" / "link-out").symlink_to(tmp_path.parent)
    with pytest.raises(ConfigError) as raised:
        require_under_roots({key: value.format(root=tmp_path)}, roots)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"'{key}' = ") and ROOTS_ENV in message


def test_paths_under_the_roots_pass_and_no_roots_means_a_local_run(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    require_under_roots({"data.train_path": str(tmp_path / "data" / "a" / "train.csv")}, roots)
    require_under_roots({"workdir": str(tmp_path / "runs" / "r1")}, roots)
    assert allowed_roots({}) is None
    require_under_roots({"data.train_path": "/etc/passwd"}, None)


def test_database_urls_with_passwords_go_by_environment_never_argv(tmp_path: Path) -> None:
    env = {
        "MLFLOW_BACKEND_STORE_URI": f"postgresql://refinery:{SECRET}@db:5432/mlflow",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://refinery:{SECRET}@db:5432/prefect",
    }
    stack = Stack(root=tmp_path, prefect_port=4201, mlflow_port=5001, timeout_s=1.0)
    started = [service for wave in services(stack, env) for service in wave]
    for service in started:
        assert SECRET not in json.dumps(service.command)  # the pid file records the command
    by_name = {service.name: service for service in started}
    assert by_name["mlflow"].env["MLFLOW_BACKEND_STORE_URI"] == env["MLFLOW_BACKEND_STORE_URI"]
    assert SECRET in by_name["prefect"].env["PREFECT_API_DATABASE_CONNECTION_URL"]


def test_a_password_in_a_tracking_uri_is_redacted_in_messages() -> None:
    from tasks.registry.tracking import redacted

    assert redacted(f"http://alice:{SECRET}@mlflow:5000/") == "http://alice:***@mlflow:5000/"
    assert redacted("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert redacted("http://mlflow:5000") == "http://mlflow:5000"
