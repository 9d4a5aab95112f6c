"""The `refinery explain / reproduce` subcommands: where a registered version came from, and re-running it.

`tasks.cli.main` registers them with `add_lineage_commands`; the work is done by
`tasks.cli.explanation` and `tasks.cli.reproduction`. The registry is chosen as for the model
commands (`--tracking-uri`, else `MLFLOW_TRACKING_URI`, else `register.tracking_uri` of `--params`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tasks.cli.model_commands import _add, _positive, _store_options, tracking_uri


def _explain(args: argparse.Namespace) -> int:
    from tasks.cli.explanation import explain
    from tasks.registry.tracking import tracking_to

    with tracking_to(tracking_uri(args)) as client:  # runs:/ artifacts resolve against this store
        print(explain(client, args.reference))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from tasks.cli.reproduction import reproduce
    from tasks.registry.tracking import tracking_to

    with tracking_to(tracking_uri(args)) as client:
        result = reproduce(client, args.name, str(args.version))
    print(result.report())
    if result.differences:
        names = ", ".join(sorted(result.differences))
        print(
            f"error: reproduction of {args.name} version {args.version} differs on {names}", file=sys.stderr
        )
        return 1
    return 0


def add_lineage_commands(commands: Any) -> None:
    """Add explain and reproduce to the subparsers `commands` of `refinery`."""
    explain = _add(
        commands,
        "explain",
        _explain,
        "show a registered version's lineage and the gate report that put it there",
        "Print the lineage chain of a registered version (git commit and dirty flag, DVC hashes of "
        "data.dvc and dvc.lock, Great Expectations summary, tokenizer fingerprint, params hash, base "
        "model and its weights hash, MLflow run, Prefect flow run and deployment), its promotion "
        "tags, and the gate report logged with it.",
    )
    explain.add_argument(
        "reference",
        metavar="NAME@ALIAS|NAME/VERSION",
        help="e.g. banking77-intent@champion or banking77-intent/3",
    )
    _store_options(explain)

    reproduce = _add(
        commands,
        "reproduce",
        _reproduce,
        "re-run a registered version from its recorded params and data; compare test metrics",
        "Fetch the version's params.yaml artifact, git commit and data hash; run validate, tokenize, "
        "train and evaluate here when this checkout matches, else in a temporary clone at the commit "
        "with the data restored by `dvc pull`; log a new MLflow run tagged refinery.reproduction_of; "
        "print recorded and reproduced test metrics. Exit code 1 when they are not exactly equal.",
    )
    reproduce.add_argument("name", metavar="NAME", help="registered model name")
    reproduce.add_argument(
        "--version", required=True, type=_positive, metavar="N", help="version to reproduce"
    )
    _store_options(reproduce)
