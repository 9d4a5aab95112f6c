"""Refinery's local team stack: PostgreSQL, a Prefect server, an MLflow tracking server, the
process serving the Refinery deployments (flows/deployments.py), a worker of the process work pool
that prefect.yaml's deployments run on, and with RAY=1 a Ray head, all on 127.0.0.1.

`make up`, `make down` and `make ui` call `python -m infra.stack up|down|ui`. Each service runs in
its own process group (MLflow's server forks job consumers that would outlive it otherwise) with a
log and a pid file in the stack directory; `down` stops exactly those groups. infra/services.py
says what the services are.

Environment: REFINERY_STACK_DIR (default .refinery/stack), REFINERY_DB (postgres, or sqlite for
SQLite files in the stack directory), REFINERY_PREFECT_PORT (4200), REFINERY_MLFLOW_PORT (5000),
REFINERY_POSTGRES_PORT (5433), REFINERY_STACK_TIMEOUT (seconds per start, 240);
PREFECT_API_DATABASE_CONNECTION_URL and MLFLOW_BACKEND_STORE_URI put the servers on existing
databases instead, MLFLOW_ARTIFACTS_DESTINATION moves the artifacts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from infra.processes import ProcessRecord, port_in_use, start_group, stop_groups, stop_leader
from infra.services import (
    HOST,
    MLFLOW_PORT,
    POSTGRES_PORT,
    PREFECT_PORT,
    READY_DEPLOYMENT,
    REPO_ROOT,
    Service,
    Stack,
    StackError,
    services,
)
from tasks.core.errors import RefineryError

__all__ = [
    "HOST",
    "MLFLOW_PORT",
    "OWNER_ENV",
    "POSTGRES_PORT",
    "PREFECT_PORT",
    "READY_DEPLOYMENT",
    "Stack",
    "StackError",
    "down",
    "owner",
    "running",
    "services",
    "up",
]

# in the environment of every process a service starts, children included: how `down` knows its own
OWNER_ENV = "REFINERY_STACK_OWNER"


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


def up(stack: Stack, env: Mapping[str, str] = os.environ, only: set[str] | None = None) -> list[str]:
    """Start what is not running, wait until every service is ready; return the names started.

    `only` limits it to some services (infra/backup.py starts the database alone).
    """
    stack.root.mkdir(parents=True, exist_ok=True)
    started: list[str] = []
    for wave in services(stack, env):
        waiting: list[tuple[Service, ProcessRecord]] = []
        for service in (s for s in wave if only is None or s.name in only):
            record = _running(stack, service)
            if record is None:
                record = _start(stack, service, env)
                started.append(service.name)
            waiting.append((service, record))
        for service, record in waiting:
            _wait_ready(stack, service, record)
    if "prefect" in started:
        release_leaked_slots(stack)
    return started


def release_leaked_slots(stack: Stack) -> None:
    """Zero the training limit's occupied slots after the Prefect server (re)starts.

    Prefect keeps concurrency leases in the server's memory (its default lease storage) and the
    occupied-slot count in the database: a run that held the slot when the server went away leaves
    a count no lease will ever give back, and every later training would wait for it forever. A
    server that has just started holds no lease, so every counted slot is such a leftover.
    """
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen

    from flows.finetune import TRAINING_LIMIT

    url = f"{stack.prefect_api_url}/v2/concurrency_limits/{TRAINING_LIMIT}"
    deadline = time.monotonic() + 120  # a server just up may answer 503 while it warms up
    while True:
        request = Request(url, data=b'{"active_slots": 0}', method="PATCH",
                          headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urlopen(request, timeout=30):
                return
        except HTTPError as err:
            if err.code == 404:  # not created yet: the deployments service creates it with 0 in use
                return
            problem = f"{err.code} {err.reason}: {err.read()[:200]!r}"
            if err.code < 500 or time.monotonic() > deadline:
                raise StackError(
                    f"prefect: could not release the '{TRAINING_LIMIT}' slots ({problem})"
                ) from None
        except URLError as err:
            if time.monotonic() > deadline:
                raise StackError(
                    f"prefect: could not release the '{TRAINING_LIMIT}' slots ({err.reason})"
                ) from None
        time.sleep(2.0)


def _start(stack: Stack, service: Service, env: Mapping[str, str]) -> ProcessRecord:
    if service.port is not None and port_in_use(HOST, service.port):
        raise StackError(
            f"{service.name}: port {service.port} on {HOST} is in use by a process this "
            f"stack did not start; free it or set REFINERY_{service.name.upper()}_PORT"
        )
    service.prepare()
    return start_group(
        service.command,
        env={**env, **service.env, OWNER_ENV: owner(stack, service.name)},
        cwd=REPO_ROOT,
        log=_log_file(stack, service),
        pid_file=_pid_file(stack, service),
    )


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


def _every_service(stack: Stack) -> list[Service]:
    """Every service a stack in this directory may have started, whatever its database, last first."""
    try:
        waves = services(dataclasses.replace(stack, db="postgres"), env={"RAY": "1"})
    except RefineryError:  # no PostgreSQL binaries: this stack cannot have started one
        waves = services(dataclasses.replace(stack, db="sqlite"), env={"RAY": "1"})
    return [s for wave in reversed(waves) for s in wave]


def down(stack: Stack, only: set[str] | None = None) -> list[str]:
    """Stop the process groups `up` started: deployments first (they pause on the live server),
    the database last (its clients are gone by then). `only` limits it to some services."""
    stopped: list[str] = []
    for service in (s for s in _every_service(stack) if only is None or s.name in only):
        record = ProcessRecord.load(_pid_file(stack, service))
        if record is not None:
            stop_leader(record, service.stop_signal)
        killed = stop_groups([record] if record else [], OWNER_ENV, owner(stack, service.name))
        if killed:
            print(f"{service.name}: killed {len(killed)} process(es) that ignored SIGTERM", file=sys.stderr)
        if record is not None:
            stopped.append(service.name)
        _pid_file(stack, service).unlink(missing_ok=True)
    return stopped


def running(stack: Stack) -> set[str]:
    """The names of the services of this stack whose recorded process still runs."""
    return {service.name for service in _every_service(stack) if _running(stack, service) is not None}


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
    if "postgres" in ready:
        print(f"PostgreSQL  {HOST}:{stack.postgres_port}  {state[ready['postgres']]}")
    print("Point a shell at the stack:")
    print("  export " + " ".join(f"{k}={v}" for k, v in stack.client_env().items()))


def _note_sqlite_left_behind(stack: Stack) -> None:
    """A stack dir from before PostgreSQL was the default: say where that state still is."""
    if (
        stack.db == "postgres"
        and stack.local_postgres() is not None
        and stack.sqlite_files["mlflow"].is_file()
    ):
        print(
            f"note: {stack.sqlite_files['mlflow']} holds this stack's SQLite state from before; it is not "
            "used on PostgreSQL: `make up DB=sqlite` serves it, infra/README.md says how to move it",
            file=sys.stderr,
        )


def _services(stack: Stack, given: str) -> set[str] | None:
    """`--only prefect,mlflow` as service names; None (every service) when empty."""
    names = {name.strip() for name in given.split(",") if name.strip()}
    known = [service.name for service in _every_service(stack)]
    unknown = sorted(names - set(known))
    if unknown:
        raise RefineryError(f"ONLY: unknown service(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return names or None


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.stack up|down|ui|status`."""
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "ui", "status"])
    parser.add_argument(
        "--only", default="", help="up: these services only, comma-separated (make up ONLY=...)"
    )
    args = parser.parse_args(argv)
    try:
        stack = Stack.from_env()
        if args.command == "up":
            started = up(stack, only=_services(stack, args.only))
            print(f"started: {', '.join(started)}" if started else "already running: nothing started")
            _print_ui(stack)
            _note_sqlite_left_behind(stack)
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
