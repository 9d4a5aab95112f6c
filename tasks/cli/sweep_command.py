"""`refinery sweep`: search `sweep.space` on the validation split, then gate and register the best.

Runs the `sweep` Prefect flow (flows/sweep.py) in the terminal's console session, like `refinery
run`; `--trials` and `--timeout` override `sweep.trials` and `sweep.timeout_s`, `--study NAME`
names the Optuna study (the same name again resumes a killed sweep).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout, new_run_dir
from tasks.sweeps.space import parse_space
from tasks.task_types import load_task_params


def add_sweep_command(commands: Any) -> None:
    """Add `sweep` to the subparsers `commands` of `refinery`."""
    sweep = commands.add_parser(
        "sweep",
        help="search hyper-parameters (Optuna) on validation, then gate and register the best",
        description="Validate and tokenize once, run Optuna trials over the params file's sweep.space "
        "(each a nested MLflow run, pruned on the validation metric, never reading the test split), "
        "then train the best params through the normal pipeline: test, compare, gate, register.",
    )
    sweep.add_argument("--params", default="params.yaml", metavar="FILE", help="params file")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one params value, repeatable (values parsed as YAML)")  # fmt: skip
    sweep.add_argument("--trials", type=int, default=None, metavar="N", help="trials in all (sweep.trials)")
    sweep.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="start no trial after this long (sweep.timeout_s)")  # fmt: skip
    sweep.add_argument("--study", default=None, metavar="NAME",
                       help="the Optuna study's name; the same name resumes it")  # fmt: skip
    sweep.add_argument("--no-register", dest="register", action="store_false",
                       help="stop after choosing: no test evaluation, gate or registration")  # fmt: skip
    sweep.add_argument(
        "--workdir", default=None, metavar="DIR", help="run directory (default: runs/sweep-<UTC>)"
    )
    sweep.add_argument(
        "--verbose", action="store_true", help="show every library's output on the terminal too"
    )


def sweep_overrides(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """`--set` values plus `--trials` / `--timeout` as their `sweep:` keys."""
    extra = {"sweep.trials": args.trials, "sweep.timeout_s": args.timeout}
    return {**overrides, **{key: value for key, value in extra.items() if value is not None}}


def summary_text(result: dict[str, Any]) -> str:
    """What the sweep chose, and what the pipeline made of it."""
    found = result["sweep"]
    counts = ", ".join(f"{n} {state}" for state, n in found["counts"].items())
    lines = [f"Sweep {found['study']}: {counts}; MLflow parent run {found['parent_run_id']}",
             f"  best validation {found['metric']}: {found['best_value']:.4f}"]  # fmt: skip
    lines += [f"  {key} = {value}" for key, value in found["best_overrides"].items()]
    finetune = result.get("finetune")
    if finetune:
        gate = "passed" if finetune["gate"]["passed"] else "failed: " + "; ".join(finetune["gate"]["reasons"])
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in finetune["metrics"].items() if isinstance(v, float))
        lines += [f"Best params on test: {metrics}", f"Gate {gate}",
                  f"Registered: {finetune['registration'].get('model_uri') or 'nothing'}"]  # fmt: skip
    return "\n".join(lines)


def run_sweep_command(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """Run the `sweep` flow for `refinery sweep`; one line on a user error."""
    from tasks.cli.console import console_session
    from tasks.cli.prefect_api import prefect_api

    overrides = sweep_overrides(args, overrides)
    parse_space(load_task_params(args.params, overrides))  # fail fast, before Prefect starts
    layout = RunLayout(Path(args.workdir) if args.workdir else new_run_dir(Path("runs"), "sweep-"))
    result: dict[str, Any] | None = None
    error: RefineryError | None = None
    with prefect_api() as api:  # starts on the other core while the pipeline's libraries load
        from flows.sweep import sweep

        if api is not None:
            api.wait_until_healthy()
        with console_session(layout.run_log, verbose=args.verbose) as console:
            console.print(f"Refinery sweep {layout.root} (all output: {layout.run_log})", soft_wrap=True)
            try:
                result = sweep(params_path=args.params, overrides=overrides, workdir=str(layout.root),
                               study=args.study, register=args.register)  # fmt: skip
            except RefineryError as err:
                error = err
    if result is not None:
        print(summary_text(result))
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
