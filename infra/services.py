"""What the local team stack runs: its configuration and its services, each with a readiness check.

infra/stack.py starts and stops these; this module only describes them. The database is the stack's
own PostgreSQL (infra/database.py) unless REFINERY_DB=sqlite (SQLite files in the stack directory)
or both PREFECT_API_DATABASE_CONNECTION_URL and MLFLOW_BACKEND_STORE_URI name existing databases.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from infra.database import LocalPostgres, bin_dir
from infra.processes import ProcessRecord, port_in_use
from tasks.core.errors import RefineryError

HOST = "127.0.0.1"
PREFECT_PORT = 4200
MLFLOW_PORT = 5000
POSTGRES_PORT = 5433  # not 5432: a system PostgreSQL often holds that one
RAY_PORT = 6379  # `RAY=1 make up`: a Ray head for train.distributed.launcher ray (ray_address "auto")
WORK_POOL = "refinery-process"  # prefect.yaml's deployments run on this pool's worker
STACK_DIR = Path(".refinery/stack")
START_TIMEOUT_S = 240.0
DATABASE_KINDS = ("postgres", "sqlite")
# `up` waits until the serving process polls for this deployment (flows/deployments.py declares it)
READY_DEPLOYMENT = "finetune/banking77"
REPO_ROOT = Path(__file__).resolve().parent.parent
# the two variables that point the servers at databases the stack does not run
EXTERNAL_DB_VARS = ("PREFECT_API_DATABASE_CONNECTION_URL", "MLFLOW_BACKEND_STORE_URI")


class StackError(RefineryError):
    """A service cannot start, or a port is taken by something that is not this stack."""


@dataclass(frozen=True)
class Stack:
    """Where the stack lives and listens, and which database it keeps its state in."""

    root: Path
    prefect_port: int = PREFECT_PORT
    mlflow_port: int = MLFLOW_PORT
    postgres_port: int = POSTGRES_PORT
    timeout_s: float = START_TIMEOUT_S
    db: str = "postgres"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Stack:
        """The stack configured by REFINERY_* variables, defaults for those unset."""
        db = env.get("REFINERY_DB") or "postgres"
        if db not in DATABASE_KINDS:
            raise StackError(f"REFINERY_DB (make up DB=…): '{db}' is not one of {', '.join(DATABASE_KINDS)}")
        try:
            return cls(
                root=(REPO_ROOT / env.get("REFINERY_STACK_DIR", str(STACK_DIR))).resolve(),
                prefect_port=int(env.get("REFINERY_PREFECT_PORT", PREFECT_PORT)),
                mlflow_port=int(env.get("REFINERY_MLFLOW_PORT", MLFLOW_PORT)),
                postgres_port=int(env.get("REFINERY_POSTGRES_PORT", POSTGRES_PORT)),
                timeout_s=float(env.get("REFINERY_STACK_TIMEOUT", START_TIMEOUT_S)),
                db=db,
            )
        except ValueError as err:
            raise StackError(f"REFINERY_*_PORT / REFINERY_STACK_TIMEOUT: {err}") from None

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def sqlite_files(self) -> dict[str, Path]:
        """The SQLite store of each server when db is sqlite."""
        return {"prefect": self.root / "prefect" / "prefect.db", "mlflow": self.root / "mlflow.db"}

    def client_env(self) -> dict[str, str]:
        """What a shell (or the serving process) needs to talk to this stack."""
        return {"PREFECT_API_URL": self.prefect_api_url, "MLFLOW_TRACKING_URI": self.mlflow_url}

    def local_postgres(self, env: Mapping[str, str] = os.environ) -> LocalPostgres | None:
        """The PostgreSQL server this stack runs, or None (SQLite, or both URLs name other servers)."""
        if self.db != "postgres" or all(env.get(name) for name in EXTERNAL_DB_VARS):
            return None
        return LocalPostgres(root=self.root / "postgres", port=self.postgres_port, bin=bin_dir(dict(env)))


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack and the check that says it is ready."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int | None
    ready: Callable[[ProcessRecord], bool]
    prepare: Callable[[], None] = field(default=lambda: None)  # before the first start
    stop_signal: signal.Signals = signal.SIGTERM  # sent to the leader alone, before the group's SIGTERM


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


def _postgres_service(server: LocalPostgres) -> Service:
    return Service(
        name="postgres",
        command=server.server_command(),
        env={},
        port=server.port,
        ready=lambda _record: server.ensure_databases(),
        prepare=server.ensure_initialised,
        stop_signal=signal.SIGINT,  # "fast" shutdown: the postmaster ends its own children cleanly
    )


def _database_env(stack: Stack, env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Prefect's and MLflow's database variables: the given URLs, the stack's server, or SQLite."""
    server = stack.local_postgres(env)
    prefect_db = f"sqlite+aiosqlite:///{stack.sqlite_files['prefect']}"
    mlflow_db = f"sqlite:///{stack.sqlite_files['mlflow']}"
    extra: dict[str, str] = {}
    if server is not None:
        prefect_db = server.url("prefect", "postgresql+asyncpg")
        mlflow_db = server.url("mlflow", "postgresql+psycopg2")  # SQLAlchemy 2.1 defaults to psycopg 3
        extra = server.client_env()
    prefect = {"PREFECT_API_DATABASE_CONNECTION_URL": env.get(EXTERNAL_DB_VARS[0]) or prefect_db, **extra}
    mlflow = {"MLFLOW_BACKEND_STORE_URI": env.get(EXTERNAL_DB_VARS[1]) or mlflow_db, **extra}
    return prefect, mlflow


def _work_pool_ready(stack: Stack) -> Callable[[ProcessRecord], bool]:
    """Ready once a worker polls the process work pool (its status turns READY)."""

    def ready(_record: ProcessRecord) -> bool:
        body = _get(f"{stack.prefect_api_url}/work_pools/{WORK_POOL}")
        return bool(body) and json.loads(body or b"{}").get("status") == "READY"

    return ready


def _ray_head() -> Service:
    """A Ray head on 127.0.0.1, in the foreground (`--block`) so that `down` stops its group."""
    ray = str(Path(sys.executable).with_name("ray"))
    return Service(
        name="ray",
        command=[ray, "start", "--head", f"--node-ip-address={HOST}", f"--port={RAY_PORT}", "--block",
                 "--include-dashboard=false", "--disable-usage-stats"],
        env={},
        port=RAY_PORT,
        ready=lambda _record: port_in_use(HOST, RAY_PORT),
    )  # fmt: skip


def services(stack: Stack, env: Mapping[str, str] = os.environ) -> list[list[Service]]:
    """The services in start order: the database, the two servers together (and a Ray head with
    RAY=1), then the served deployments and the worker of prefect.yaml's process work pool."""
    common = {"PREFECT_HOME": str(stack.root / "prefect"), "PYTHONUNBUFFERED": "1"}
    prefect_db, mlflow_db = _database_env(stack, env)
    artifacts = env.get("MLFLOW_ARTIFACTS_DESTINATION") or str(stack.artifacts_dir)
    python = [sys.executable, "-m"]
    prefect = Service(
        name="prefect",
        command=[*python, "prefect", "server", "start", "--host", HOST, "--port", str(stack.prefect_port)],
        env={
            **common,
            **prefect_db,
            "PREFECT_API_URL": stack.prefect_api_url,
            "PREFECT_UI_API_URL": stack.prefect_api_url,
        },
        port=stack.prefect_port,
        ready=_answers(f"{stack.prefect_api_url}/health"),
    )
    mlflow = Service(
        name="mlflow",
        # the store URI travels in MLFLOW_BACKEND_STORE_URI (the CLI's envvar), not in the argv
        command=[*python, "mlflow", "server", f"--host={HOST}", f"--port={stack.mlflow_port}",
                 "--serve-artifacts", f"--artifacts-destination={artifacts}"],
        env={**common, **mlflow_db},
        port=stack.mlflow_port,
        ready=_answers(f"{stack.mlflow_url}/health"),
    )  # fmt: skip
    deployments = Service(
        name="deployments",
        command=[*python, "flows.deployments"],
        env={**common, **stack.client_env()},
        port=None,
        ready=_deployment_polled_since(stack),
    )
    prefect_cli = f"{sys.executable} -m prefect"
    worker = Service(
        name="worker",
        # prefect.yaml's deployments on the process pool, then a worker that runs their flow runs
        command=["sh", "-c", f"{prefect_cli} work-pool create {WORK_POOL} --type process --overwrite"
                 f" && {prefect_cli} --no-prompt deploy --all"
                 f" && exec {prefect_cli} worker start --pool {WORK_POOL}"],
        env={**common, **stack.client_env()},
        port=None,
        ready=_work_pool_ready(stack),
    )  # fmt: skip
    server = stack.local_postgres(env)
    database = [[_postgres_service(server)]] if server is not None else []
    ray = [_ray_head()] if env.get("RAY") == "1" else []
    return [*database, [prefect, mlflow, *ray], [deployments, worker]]
