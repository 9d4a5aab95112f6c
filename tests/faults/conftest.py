"""Fault injection with real processes: a real `mlflow server` that is killed and started again,
real `python -m tasks...` processes killed with SIGKILL or run out of disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest

from tests.conftest import REPO_ROOT

# long enough to kill between two checkpoints, short enough for CI: 60 steps of a 2-layer BERT
KILLABLE_TRAINING = {
    "max_steps": 60,
    "batch_size": 8,
    "eval_strategy": "steps",
    "eval_steps": 6,
    "save_total_limit": 20,
    "logging_steps": 6,
    "early_stopping_patience": None,
}
FAST_CLIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process under test: this checkout first on the path, offline."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", **FAST_CLIENT, **extra})
    return env


class MlflowServer:
    """A real `mlflow server` on a SQLite store in a temporary folder, killed and restarted at will."""

    def __init__(self, root: Path, app_name: str | None = None, env: dict[str, str] | None = None) -> None:
        self.root, self.port = root, free_port()
        self.app_name, self.env = app_name, env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts")]
        command += ["--app-name", self.app_name] if self.app_name else []
        env = child_env(MLFLOW_BACKEND_STORE_URI=f"sqlite:///{self.root / 'mlflow.db'}", **self.env)
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urlopen(f"{self.uri}/health", timeout=2):
                    return
            except (URLError, OSError):
                assert self.process.poll() is None, (self.root / "server.log").read_text()[-2000:]
                time.sleep(0.5)
        self.kill()  # never left behind, answering later to nobody
        raise TimeoutError(f"mlflow server on {self.uri} did not answer in {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    root = tmp_path / "mlflow-server"
    root.mkdir()
    server = MlflowServer(root)
    server.start()
    try:
        yield server
    finally:
        server.kill()
