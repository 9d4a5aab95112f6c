"""The `refinery promote / rollback / models / predict` subcommands: parsers and handlers.

`tasks.cli.main` registers them with `add_model_commands`; the work is done by
`tasks.registry.promotion` and `tasks.cli.prediction`. Every command reads the registry named by
`--tracking-uri`, else `MLFLOW_TRACKING_URI`, else `register.tracking_uri` of the params file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.core.config import RegisterConfig, load_params

# tasks.registry.promotion.CHAMPION / PREVIOUS_CHAMPION, spelled out: importing MLflow would slow `--help`
CHAMPION, PREVIOUS_CHAMPION = "champion", "previous-champion"
Handler = Callable[[argparse.Namespace], int]


def tracking_uri(args: argparse.Namespace) -> str:
    """`--tracking-uri`, else `MLFLOW_TRACKING_URI`, else `register.tracking_uri` of `--params`."""
    from tasks.registry.tracking import TRACKING_URI_ENV, effective_tracking_uri, require_store

    # params.yaml is only needed when neither the option nor the environment names the store
    named = bool(args.tracking_uri or os.environ.get(TRACKING_URI_ENV))
    cfg = RegisterConfig() if named else load_params(args.params).register_
    return require_store(effective_tracking_uri(cfg, args.tracking_uri))


def _promote(args: argparse.Namespace) -> int:
    from tasks.registry.promotion import promote
    from tasks.registry.tracking import tracking_to

    with tracking_to(tracking_uri(args)) as client:
        print(promote(client, args.name, str(args.version), reason=args.reason).message())
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from tasks.registry.promotion import rollback
    from tasks.registry.tracking import tracking_to

    with tracking_to(tracking_uri(args)) as client:
        print(rollback(client, args.name, reason=args.reason).message())
    return 0


def _models(args: argparse.Namespace) -> int:
    from tasks.registry.promotion import METRIC_COLUMNS, list_versions, versions_table
    from tasks.registry.tracking import tracking_to
    from tasks.task_types import TASK_TYPES

    with tracking_to(tracking_uri(args)) as client:
        rows = list_versions(client, args.name)
    print(f"{args.name}: {len(rows)} version(s)")
    if rows:
        # the newest version's task type names the columns: a regressor's rmse, a tagger's entity F1
        task = TASK_TYPES.get(rows[0].task or "")
        print(versions_table(rows, task.metrics[:2] if task else METRIC_COLUMNS))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from tasks.cli.prediction import predict_file
    from tasks.registry.tracking import tracking_to

    with tracking_to(tracking_uri(args)):  # models:/ URIs resolve against this registry
        result = predict_file(
            args.model,
            Path(args.input),
            Path(args.output),
            args.text_column,
            args.batch_size,
            pair_column=args.text_pair_column,
        )
    print(result.message())
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking/registry store (default: $MLFLOW_TRACKING_URI, else register.tracking_uri "
        "of --params)",
    )
    parser.add_argument(
        "--params",
        default="params.yaml",
        metavar="FILE",
        help="params file read for register.tracking_uri when neither of the above is given "
        "(default: params.yaml)",
    )


def _add(
    commands: Any, name: str, handler: Handler, summary: str, description: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=description)
    parser.set_defaults(handler=handler)
    return parser


def add_model_commands(commands: Any) -> None:
    """Add promote, rollback, models and predict to the subparsers `commands` of `refinery`."""
    promote = _add(
        commands,
        "promote",
        _promote,
        f"point alias '{CHAMPION}' at a registered version",
        f"Move alias '{CHAMPION}' of model NAME to --version. The version that was champion gets alias "
        f"'{PREVIOUS_CHAMPION}' and tags demoted_by/demoted_at/replaced_by; the promoted version gets "
        "tags promoted_by ($USER), promoted_at (ISO UTC), promotion_reason and promoted_from. "
        "Promoting the current champion changes nothing.",
    )
    promote.add_argument("name", metavar="NAME", help="registered model name")
    promote.add_argument("--version", required=True, type=_positive, metavar="N", help="version to promote")
    promote.add_argument("--reason", default=None, metavar="TEXT", help="why; stored as promotion_reason")
    _store_options(promote)

    rollback = _add(
        commands,
        "rollback",
        _rollback,
        f"give '{CHAMPION}' back to the '{PREVIOUS_CHAMPION}' version",
        f"Swap aliases '{CHAMPION}' and '{PREVIOUS_CHAMPION}' of model NAME, so a second rollback "
        "returns to the start; the same tags as promote are written. Fails when there is no "
        f"'{PREVIOUS_CHAMPION}'. Aliases set by hand in the MLflow UI count like any other.",
    )
    rollback.add_argument("name", metavar="NAME", help="registered model name")
    rollback.add_argument("--reason", default=None, metavar="TEXT", help="why; stored as promotion_reason")
    _store_options(rollback)

    models = _add(
        commands,
        "models",
        _models,
        "list the registered versions of a model",
        "List the versions of model NAME, newest first: aliases (read from the registry now), "
        "the two headline test metrics of the model's task type (a classifier's accuracy and macro F1, "
        "a regressor's RMSE and MAE, ...) of the version's run, gate decision, data hash (shortened) and the "
        "creation time in UTC.",
    )
    models.add_argument("name", metavar="NAME", help="registered model name")
    _store_options(models)

    predict = _add(
        commands,
        "predict",
        _predict,
        "score a file of texts with a registered model",
        "Score every row of a CSV/TSV/JSONL/Parquet file in batches, with a progress bar. The output "
        "(format from its extension) has the input's columns plus the model's answer: 'label' and "
        "'confidence' (a classifier), 'labels' and 'scores' (multi-label), 'prediction' (regression) "
        "or 'entities' (token classification: typed spans with character offsets). Texts longer "
        "than the model's maximum are truncated.",
    )
    predict.add_argument(
        "--model",
        required=True,
        metavar="URI",
        help=f"model URI, e.g. models:/NAME@{CHAMPION} or models:/NAME/3",
    )
    predict.add_argument(
        "--input", required=True, metavar="FILE", help="file to score (.csv/.tsv/.jsonl/.parquet)"
    )
    predict.add_argument("--output", required=True, metavar="FILE", help="where to write the predictions")
    predict.add_argument(
        "--text-column", default="text", metavar="NAME", help="column of texts (default: text)"
    )
    predict.add_argument(
        "--text-pair-column",
        default=None,
        metavar="NAME",
        help="column of the second texts, for a model of text pairs",
    )
    predict.add_argument(
        "--batch-size", default=64, type=_positive, metavar="N", help="texts per forward pass (default: 64)"
    )
    _store_options(predict)


def run_handler(args: argparse.Namespace) -> int | None:
    """Run the handler a model command set on `args`; None when `args` is another command."""
    handler: Handler | None = getattr(args, "handler", None)
    return handler(args) if handler is not None else None
