"""Faults around the registry: a real `mlflow server` stopped in the middle of registration or down
for the whole register step, and two `refinery promote` processes at once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tasks.gating.decision import GateDecision
from tests.faults.conftest import MlflowServer, child_env
from tests.integration.conftest import TEXTS, build_run_dir

pytestmark = pytest.mark.faults

MODEL = "tiny-intent"
PASSED = GateDecision(True, ["accuracy 0.9000 >= 0.5000"], {"accuracy": {"value": 0.9, "threshold": 0.5}})


def _params_file(tmp_path: Path, uri: str, attempts: int, wait_s: float) -> Path:
    train_csv = tmp_path / "data" / "train.csv"
    train_csv.parent.mkdir(exist_ok=True)
    train_csv.write_text("text,category\n" + "\n".join(f"{t},x" for t in TEXTS) + "\n", encoding="utf-8")
    raw = {
        "data": {"name": "banking77", "train_path": str(train_csv), "test_path": None},
        "gate": {"on_fail": "complete"},
        "register": {
            "model_name": MODEL,
            "experiment": "fault-tests",
            "tracking_uri": uri,
            "retry_attempts": attempts,
            "retry_wait_seconds": wait_s,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _register(params: Path, workdir: Path, tmp_path: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tasks.steps.registration", "--params", str(params)]
    return subprocess.Popen(
        [*command, "--workdir", str(workdir)],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _assert_registered_once(uri: str) -> None:
    """Exactly one version, with every tag and the alias; no MLflow run left RUNNING."""
    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
    tags = client.get_model_version(MODEL, "1").tags
    assert {"gate.report", "mlflow_run_id", "gate.decision", "data_hash"} <= set(tags)
    assert str(client.get_registered_model(MODEL).aliases["challenger"]) == "1"
    experiment = client.get_experiment_by_name("fault-tests")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["refinery.registration"] == "complete"


def test_server_stopped_after_the_version_is_created_then_started_again(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    params = _params_file(tmp_path, mlflow_server.uri, attempts=9, wait_s=1.0)
    layout = build_run_dir(tmp_path / "run", PASSED)
    # a register step that got as far as the version and its alias, then lost the server
    create_version = (
        "from pathlib import Path; from tasks.core.layout import RunLayout; "
        "from tasks.gating.decision import GateDecision; from tasks.lineage.record import current_lineage; "
        "from tasks.steps.registration import log_and_register; "
        "from tasks.task_types import load_task_params; "
        f"p = load_task_params('{params}'); l = RunLayout(Path('{layout.root}')); "
        "d = GateDecision.from_json(l.gate_json.read_text()); "
        "log_and_register(p, l, d, current_lineage(p, layout=l))"
    )
    subprocess.run([sys.executable, "-c", create_version], cwd=tmp_path, env=child_env(), check=True)
    mlflow_server.kill()

    retrying = _register(params, layout.root, tmp_path)  # meets the server down, retries with backoff
    time.sleep(3)
    mlflow_server.start()
    _, err = retrying.communicate(timeout=300)

    assert retrying.returncode == 0, err[-3000:]
    assert "tracking store unavailable (attempt 1)" in err
    _assert_registered_once(mlflow_server.uri)
    assert layout.registration_json.is_file()


def test_server_down_for_the_whole_step_then_the_printed_command_registers(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    params = _params_file(tmp_path, mlflow_server.uri, attempts=2, wait_s=0.2)
    layout = build_run_dir(tmp_path / "run", PASSED)
    mlflow_server.kill()

    _, err = (failed := _register(params, layout.root, tmp_path)).communicate(timeout=300)

    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert failed.returncode == 1 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert f"the model is trained in {layout.model_dir}" in errors[0]
    command = re.search(r"`(python -m tasks\.steps\.registration [^`]+)`", errors[0])
    assert command is not None, errors[0]

    mlflow_server.start()
    for _ in range(2):  # the printed command, and the same once more: still one version
        argv = [sys.executable, *command.group(1).split()[1:]]
        done = subprocess.run(argv, cwd=tmp_path, env=child_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    _assert_registered_once(mlflow_server.uri)


def test_two_promotions_at_once_leave_a_consistent_chain(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the versions need no server: only aliases move
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=str(tmp_path / "model"))
    client.set_registered_model_alias(MODEL, "champion", "1")

    promotions = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tasks.cli.main",
                "promote",
                MODEL,
                "--version",
                version,
                "--tracking-uri",
                uri,
            ],
            cwd=tmp_path,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for version in ("2", "3")
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in promotions]

    assert all(code == 0 for code, _ in results), results
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    champion, previous = aliases["champion"], aliases["previous-champion"]
    assert {champion, previous} == {"2", "3"}  # the later one replaced the earlier one, not version 1
    assert client.get_model_version(MODEL, champion).tags["promoted_from"] == previous
    assert client.get_model_version(MODEL, previous).tags["promoted_from"] == "1"
