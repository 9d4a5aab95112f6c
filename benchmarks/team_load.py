"""The team stack under load, on PostgreSQL and on SQLite: `python benchmarks/team_load.py`.

For each database it starts its own stack (`python -m infra.stack up` with REFINERY_DB, free ports
on 127.0.0.1, a scratch directory), submits `--flow-runs` trainings of a tiny BERT to
`finetune/banking77` at once while `--clients` readers and a promote/rollback loop run for
`--duration` seconds (benchmarks/load.py; one training runs first, untimed, so that there are
versions to promote from the start), waits for the trainings, checks that each registered
exactly one version, and stops the stack. Results: benchmarks/results/team-load-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load import REPO, Target, run_load
from infra.stack import Stack

MODEL_NAME = "tiny-intent-load"
EXPERIMENT = "refinery-load"
# the champion comparison passes whatever the metrics: the promote loop keeps a champion in place
# all along, and the trainings under test must register (the gate is not what is measured)
LOAD_GATE = {
    "thresholds": {"accuracy": 0.0, "f1_macro": 0.0},
    "champion": {"min_delta": -1.0, "max_class_drop": 1.0},
}
# variables that would point the benchmark's stack at someone else's servers or databases
FOREIGN = ("PREFECT_API_DATABASE_CONNECTION_URL", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(home: Path, db: str) -> dict[str, str]:
    """The environment of a stack of our own in `home`, on `db`, and of its clients."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env.update(REFINERY_DB=db, REFINERY_STACK_DIR=str(home / "stack"), PREFECT_HOME=str(home / "prefect-cli"))
    for name in ("REFINERY_PREFECT_PORT", "REFINERY_MLFLOW_PORT", "REFINERY_POSTGRES_PORT"):
        env[name] = str(free_port())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(Stack.from_env(env).client_env())
    return env


def tiny_setup(home: Path) -> Path:
    """The tiny model, data sample and params.yaml the integration tests train with."""
    from tests.fixtures import build_tiny_classifier
    from tests.integration.conftest import banking_sample, tiny_params

    base = build_tiny_classifier(home / "tiny-base", ["x", "y"])
    train_csv = home / "train.csv"
    banking_sample().to_csv(train_csv, index=False)
    register = {"model_name": MODEL_NAME, "experiment": EXPERIMENT}
    return tiny_params(home, base, train_csv, register=register, gate=LOAD_GATE)


def _stack(env: dict[str, str], command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.stack", command], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"infra.stack {command} failed: {done.stderr.strip()[-2000:]}")


def measure(db: str, args: argparse.Namespace) -> dict[str, Any]:
    """One database: its own stack up, the load, the stack down (whatever happened)."""
    with tempfile.TemporaryDirectory(prefix=f"team-load-{db}-") as scratch:
        home = Path(scratch)
        env = stack_env(home, db)
        params = tiny_setup(home)
        _stack(env, "up")
        try:
            stack = Stack.from_env(env)
            target = Target(stack.prefect_api_url, stack.mlflow_url, MODEL_NAME, EXPERIMENT, env)
            result = run_load(
                target, params, home, args.flow_runs, args.clients, args.duration, args.max_steps, seed_runs=1
            )
        finally:
            _stack(env, "down")
    return {"db": db, **result}


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown(results: list[dict[str, Any]]) -> str:
    """The README table: one row per database, then one per database and operation."""
    lines = [
        _row(
            "database",
            "requests served",
            "errors",
            "p50 ms",
            "p95 ms",
            "flow runs completed",
            "versions per run",
        ),
        _row(*["---"] * 7),
    ]
    for result in results:
        total = result["operations"]["total"]
        done = sum(state == "COMPLETED" for state in result["flow_run_states"].values())
        per_run = ", ".join(map(str, sorted(set(result["versions_per_flow_run"].values()))))
        cells = (total["served"], total["errors"], total["p50_ms"], total["p95_ms"])
        lines.append(_row(result["db"], *cells, f"{done}/{result['flow_runs']}", per_run))
    lines += ["", _row("database", "operation", "served", "errors", "p50 ms", "p95 ms"), _row(*["---"] * 6)]
    for result in results:
        for name, row in sorted(result["operations"].items()):
            if name != "total":
                lines.append(
                    _row(result["db"], name, row["served"], row["errors"], row["p50_ms"], row["p95_ms"])
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"])
    parser.add_argument("--flow-runs", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds the readers run")
    parser.add_argument("--max-steps", type=int, default=20, help="training steps of each flow run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    results = [measure(db, args) for db in args.db]
    machine = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()}
    stem = args.out / f"team-load-{date.today().isoformat()}"
    stem.with_suffix(".json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2) + "\n"
    )
    table = markdown(results)
    settings = (
        f"{args.flow_runs} flow runs, {args.clients} readers + promote/rollback for {args.duration:.0f} s"
    )
    stem.with_suffix(".md").write_text(f"# Team stack under load ({settings}, {machine})\n\n{table}")
    print(table)
    ok = all(r["operations"]["total"]["errors"] == 0 for r in results) and all(
        set(r["versions_per_flow_run"].values()) == {1} for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
