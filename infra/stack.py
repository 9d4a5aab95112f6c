"""Refinery's local team stack: a Prefect server, an MLflow tracking server and the process serving
the Refinery deployments (flows/deployments.py), all on 127.0.0.1.

`make up`, `make down` and `make ui` call `python -m infra.stack up|down|ui`. Each service runs in
its own process group (MLflow's server forks job consumers that would outlive it otherwise) with a
log and a pid file in the stack directory; `down` stops exactly those groups.

Environment: REFINERY_STACK_DIR (default .refinery/stack), REFINERY_PREFECT_PORT (4200),
REFINERY_MLFLOW_PORT (5000), REFINERY_STACK_TIMEOUT (seconds per start, 240);
PREFECT_API_DATABASE_CONNECTION_URL and MLFLOW_BACKEND_STORE_URI put the servers on Postgres
instead of SQLite files in the stack directory, MLFLOW_ARTIFACTS_DESTINATION moves the artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from infra.processes import ProcessRecord, port_in_use, start_group, stop_groups
from tasks.core.errors import RefineryError

HOST = "127.0.0.1"
PREFECT_PORT = 4200
MLFLOW_PORT = 5000
STACK_DIR = Path(".refinery/stack")
START_TIMEOUT_S = 240.0
# `up` waits until the serving process polls for this deployment (flows/deployments.py declares it)
READY_DEPLOYMENT = "finetune/banking77"
REPO_ROOT = Path(__file__).resolve().parent.parent
# in the environment of every process a service starts, children included: how `down` knows its own
OWNER_ENV = "REFINERY_STACK_OWNER"


class StackError(RefineryError):
    """A service cannot start, or a port is taken by something that is not this stack."""


@dataclass(frozen=True)
class Stack:
    """Where the stack lives and listens."""

    root: Path
    prefect_port: int = PREFECT_PORT
    mlflow_port: int = MLFLOW_PORT
    timeout_s: float = START_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Stack:
        """The stack configured by REFINERY_* variables, defaults for those unset."""
        try:
            return cls(
                root=(REPO_ROOT / env.get("REFINERY_STACK_DIR", str(STACK_DIR))).resolve(),
                prefect_port=int(env.get("REFINERY_PREFECT_PORT", PREFECT_PORT)),
                mlflow_port=int(env.get("REFINERY_MLFLOW_PORT", MLFLOW_PORT)),
                timeout_s=float(env.get("REFINERY_STACK_TIMEOUT", START_TIMEOUT_S)),
            )
        except ValueError as err:
            raise StackError(f"REFINERY_PREFECT_PORT / REFINERY_MLFLOW_PORT / timeout: {err}") from None

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    def client_env(self) -> dict[str, str]:
        """What a shell (or the serving process) needs to talk to this stack."""
        return {"PREFECT_API_URL": self.prefect_api_url, "MLFLOW_TRACKING_URI": self.mlflow_url}


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack and the check that says it is ready."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int | None
    ready: Callable[[ProcessRecord], bool]


def _get(url: str) -> bytes | None:
    """The body of a 200 response to GET `url`, or None (no answer or another status)."""
    try:
        with urlopen(url, timeout=5) as response:
            return response.read() if response.status == 200 else None
    except (URLError, OSError):
        return None


def _answers(url: str) -> Callable[[ProcessRecord], bool]:
    return lambda _record: _get(url) is not None


def _deployment_polled_since(stack: Stack) -> Callable[[ProcessRecord], bool]:
    """Ready once the deployment was polled by a serving process started at `record.started_at`."""

    def ready(record: ProcessRecord) -> bool:
        body = _get(f"{stack.prefect_api_url}/deployments/name/{READY_DEPLOYMENT}")
        polled = json.loads(body).get("last_polled") if body else None
        return isinstance(polled, str) and datetime.fromisoformat(polled).timestamp() >= record.started_at

    return ready


def services(stack: Stack, env: Mapping[str, str] = os.environ) -> list[list[Service]]:
    """The services in start order: the two servers together, then the deployments."""
    prefect_home = stack.root / "prefect"
    common = {"PREFECT_HOME": str(prefect_home), "PYTHONUNBUFFERED": "1"}
    prefect_db = env.get("PREFECT_API_DATABASE_CONNECTION_URL") or (
        f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    )
    mlflow_store = env.get("MLFLOW_BACKEND_STORE_URI") or f"sqlite:///{stack.root / 'mlflow.db'}"
    artifacts = env.get("MLFLOW_ARTIFACTS_DESTINATION") or str(stack.root / "mlartifacts")
    python = [sys.executable, "-m"]
    prefect = Service(
        name="prefect",
        command=[*python, "prefect", "server", "start", "--host", HOST, "--port", str(stack.prefect_port)],
        env={
            **common,
            "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
            "PREFECT_API_URL": stack.prefect_api_url,
            "PREFECT_UI_API_URL": stack.prefect_api_url,
        },
        port=stack.prefect_port,
        ready=_answers(f"{stack.prefect_api_url}/health"),
    )
    mlflow = Service(
        name="mlflow",
        command=[
            *python,
            "mlflow",
            "server",
            f"--host={HOST}",
            f"--port={stack.mlflow_port}",
            "--serve-artifacts",
            f"--artifacts-destination={artifacts}",
        ],
        # the store URL (it may hold a password) goes by environment, never in argv or the pid file
        env={**common, "MLFLOW_BACKEND_STORE_URI": mlflow_store},
        port=stack.mlflow_port,
        ready=_answers(f"{stack.mlflow_url}/health"),
    )
    deployments = Service(
        name="deployments",
        command=[*python, "flows.deployments"],
        env={**common, **stack.client_env()},
        port=None,
        ready=_deployment_polled_since(stack),
    )
    return [[prefect, mlflow], [deployments]]


def _pid_file(stack: Stack, service: Service) -> Path:
    return stack.root / f"{service.name}.pid"


def _log_file(stack: Stack, service: Service) -> Path:
    return stack.root / f"{service.name}.log"


def owner(stack: Stack, service_name: str) -> str:
    """The OWNER_ENV value of one service's processes."""
    return f"{stack.root}#{service_name}"


def _running(stack: Stack, service: Service) -> ProcessRecord | None:
    record = ProcessRecord.load(_pid_file(stack, service))
    return record if record is not None and record.leader_alive() else None


def up(stack: Stack, env: Mapping[str, str] = os.environ) -> list[str]:
    """Start what is not running, wait until every service is ready; return the names started."""
    stack.root.mkdir(parents=True, exist_ok=True)
    started: list[str] = []
    for wave in services(stack, env):
        waiting: list[tuple[Service, ProcessRecord]] = []
        for service in wave:
            record = _running(stack, service)
            if record is None:
                if service.port is not None and port_in_use(HOST, service.port):
                    raise StackError(
                        f"{service.name}: port {service.port} on {HOST} is in use by a process this "
                        f"stack did not start; free it or set REFINERY_{service.name.upper()}_PORT"
                    )
                record = start_group(
                    service.command,
                    env={**env, **service.env, OWNER_ENV: owner(stack, service.name)},
                    cwd=REPO_ROOT,
                    log=_log_file(stack, service),
                    pid_file=_pid_file(stack, service),
                )
                started.append(service.name)
            waiting.append((service, record))
        for service, record in waiting:
            _wait_ready(stack, service, record)
    return started


def _wait_ready(stack: Stack, service: Service, record: ProcessRecord) -> None:
    deadline = time.monotonic() + stack.timeout_s
    while time.monotonic() < deadline:
        if service.ready(record):
            return
        if not record.leader_alive():
            break
        time.sleep(1.0)
    stop_groups([record], OWNER_ENV, owner(stack, service.name))
    _pid_file(stack, service).unlink(missing_ok=True)
    what = "exited" if time.monotonic() < deadline else f"was not ready after {stack.timeout_s:.0f} s"
    raise StackError(f"{service.name} {what}; see {_log_file(stack, service)}:\n{_tail(stack, service)}")


def _tail(stack: Stack, service: Service, lines: int = 15) -> str:
    path = _log_file(stack, service)
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def down(stack: Stack) -> list[str]:
    """Stop the process groups `up` started, deployments first (they pause on the live server)."""
    stopped: list[str] = []
    for service in [s for wave in reversed(services(stack)) for s in wave]:
        record = ProcessRecord.load(_pid_file(stack, service))
        killed = stop_groups([record] if record else [], OWNER_ENV, owner(stack, service.name))
        if killed:
            print(f"{service.name}: killed {len(killed)} process(es) that ignored SIGTERM", file=sys.stderr)
        if record is not None:
            stopped.append(service.name)
        _pid_file(stack, service).unlink(missing_ok=True)
    return stopped


def status(stack: Stack) -> dict[str, bool]:
    """Each service's name and whether it is running and ready."""
    return {
        service.name: (record := _running(stack, service)) is not None and service.ready(record)
        for wave in services(stack)
        for service in wave
    }


def _print_ui(stack: Stack) -> None:
    ready = status(stack)
    state = {True: "ready", False: "not running (make up)"}
    print(f"Prefect UI  {stack.prefect_ui_url}  {state[ready['prefect']]}")
    print(f"MLflow UI   {stack.mlflow_url}  {state[ready['mlflow']]}")
    print(f"Deployments {READY_DEPLOYMENT} ...  {state[ready['deployments']]}")
    print("Point a shell at the stack:")
    print("  export " + " ".join(f"{k}={v}" for k, v in stack.client_env().items()))


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.stack up|down|ui|status`."""
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "ui", "status"])
    args = parser.parse_args(argv)
    try:
        stack = Stack.from_env()
        if args.command == "up":
            started = up(stack)
            print(f"started: {', '.join(started)}" if started else "already running: nothing started")
            _print_ui(stack)
        elif args.command == "down":
            stopped = down(stack)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")
        elif args.command == "ui":
            _print_ui(stack)
        else:
            ready = status(stack)
            for name, ok in ready.items():
                print(f"{name:12s} {'ready' if ok else 'not running'}")
            return 0 if all(ready.values()) else 1
    except RefineryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
