"""The `refinery` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tasks.cli.garbage_collection import add_gc_command
from tasks.cli.init import add_init_command
from tasks.cli.lineage_commands import add_lineage_commands
from tasks.cli.model_commands import add_model_commands, run_handler
from tasks.cli.prefect_api import prefect_api
from tasks.cli.sweep_command import add_sweep_command, run_sweep_command
from tasks.core.config import ConfigError, parse_value
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout, new_run_dir
from tasks.task_types import load_task_params

DESCRIPTION = """\
Refinery fine-tunes a pre-trained transformer on your data, reproducibly:
validate (Great Expectations) -> tokenize (cached) -> train (HF Trainer) -> evaluate
-> gate (thresholds) -> register (MLflow Model Registry, alias 'challenger').
The same steps run as a Prefect flow (`refinery run`) and as DVC stages (`dvc repro`).
`refinery init DATA_FILE` writes a params file for your own data; `refinery sweep` searches
hyper-parameters (Optuna, on validation only) and sends the best through the same gate.
Registered versions are served through alias 'champion': `refinery models` lists them,
`refinery promote` / `refinery rollback` move the alias, `refinery predict` scores a file,
`refinery explain` shows a version's lineage, `refinery reproduce` re-runs it;
`refinery gc` keeps the caches within cache.budget_gb."""


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["train.learning_rate=3e-5"]` -> `{"train.learning_rate": 3e-05}` (values parsed as YAML)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or "." not in key:
            raise ConfigError(f"--set '{pair}': expected section.key=value, e.g. train.learning_rate=3e-5")
        overrides[key.strip()] = parse_value(value)
    return overrides


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refinery", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run the whole pipeline as a Prefect flow",
        description="Run validate -> tokenize -> train -> evaluate -> gate -> register as a Prefect flow "
        "(a local Prefect API starts by itself when no server is configured) and print a summary: "
        "test metrics, the gate decision with its reasons and the registered model URI.",
    )
    run.add_argument(
        "--params", default="params.yaml", metavar="FILE", help="params file (default: params.yaml)"
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one params value, repeatable; values are parsed as YAML "
        "(e.g. --set train.learning_rate=3e-5 --set data.max_train_samples=500)",
    )
    run.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="run directory for outputs (default: runs/<UTC timestamp>)",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show every library's output on the terminal too (it always goes to <workdir>/run.log)",
    )
    add_sweep_command(commands)  # sweep
    add_init_command(commands)  # init
    add_model_commands(commands)  # promote, rollback, models, predict
    add_lineage_commands(commands)  # explain, reproduce
    add_gc_command(commands)  # gc
    return parser


def _summary(params_path: str, overrides: dict[str, Any], layout: RunLayout) -> str | None:
    from tasks.cli.summary import run_summary_text
    from tasks.gating.decision import GateDecision
    from tasks.registry.registration import RegistrationResult
    from tasks.registry.tracking import effective_tracking_uri

    if not (layout.gate_json.is_file() and layout.registration_json.is_file()):
        return None
    params = load_task_params(params_path, overrides)
    metrics = json.loads(layout.eval_metrics.read_text(encoding="utf-8"))
    decision = GateDecision.from_json(layout.gate_json.read_text(encoding="utf-8"))
    registration = RegistrationResult.from_json(layout.registration_json.read_text(encoding="utf-8"))
    tracking_uri = effective_tracking_uri(params.register_)
    training = (
        json.loads(layout.train_metrics.read_text(encoding="utf-8"))
        if layout.train_metrics.is_file()
        else None
    )
    return run_summary_text(params, metrics, decision, registration, tracking_uri, training)


# Defaults for Prefect's temporary local API (a user's own setting still wins):
EPHEMERAL_DEFAULTS = {
    # it gets 20 s to start; a busy 2-core machine needs longer, and a run that fails before its
    # first step helps nobody
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # its usage telemetry: on a machine without internet, an error line on the console every run
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _ephemeral_api_defaults() -> None:
    for name, value in EPHEMERAL_DEFAULTS.items():
        os.environ.setdefault(name, value)


def _run(args: argparse.Namespace) -> int:
    from tasks.cli.console import console_session

    _ephemeral_api_defaults()
    overrides = parse_overrides(args.overrides)
    load_task_params(args.params, overrides)  # fail fast, before any Prefect or model start-up
    layout = RunLayout(Path(args.workdir) if args.workdir else new_run_dir(Path("runs")))
    error: RefineryError | None = None
    with prefect_api() as api:  # starts on the other core while the pipeline's libraries load
        from flows.finetune import finetune  # before the session: library handlers bind to the terminal

        if api is not None:
            api.wait_until_healthy()
        with console_session(layout.run_log, verbose=args.verbose) as console:
            console.print(f"Refinery run {layout.root} (all output: {layout.run_log})", soft_wrap=True)
            try:
                finetune(params_path=args.params, overrides=overrides, workdir=str(layout.root))
            except RefineryError as err:
                error = err
    summary = _summary(args.params, overrides, layout)
    if summary:
        print(summary)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `refinery` console script."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "sweep":
            _ephemeral_api_defaults()
            return run_sweep_command(args, parse_overrides(args.overrides))
        handled = run_handler(args)
        if handled is not None:
            return handled
    except RefineryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
