"""The thin `main()` every DVC stage shares: read params, pick the run directory, run one step."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types import load_task_params


def stage_main(step: Callable[[Any, RunLayout], Any], argv: list[str] | None = None) -> None:
    """Run `step(params, layout)` as a command; user errors print one line and exit 1."""
    parser = argparse.ArgumentParser(description=step.__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--workdir", default="artifacts", help="run directory (default: artifacts)")
    args = parser.parse_args(argv)
    try:
        params = load_task_params(args.params)
        step(params, RunLayout(Path(args.workdir)))
    except RefineryError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
