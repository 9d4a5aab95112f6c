"""What every step shares at its edge: the thin `main()` of a DVC stage, and the record each step
leaves on the `refinery.steps` logger when it finishes (for a console or a log file to show)."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types import load_task_params

STEP_LOGGER = "refinery.steps"
log = logging.getLogger(STEP_LOGGER)
Result = TypeVar("Result")


@dataclass(frozen=True)
class StepFinished:
    """One step's end: its name, how long it ran, and what it returned (None when it failed)."""

    step: str
    seconds: float
    result: Any
    failed: bool = False


def announced(step: str, run: Callable[..., Result]) -> Callable[..., Result]:
    """`run`, logging a `StepFinished` (attribute `step_finished`) when it returns or raises."""

    @functools.wraps(run)
    def timed(*args: Any, **kwargs: Any) -> Result:
        started = time.perf_counter()
        try:
            result = run(*args, **kwargs)
        except BaseException:
            finished = StepFinished(step, time.perf_counter() - started, None, failed=True)
            log.info("%s failed after %.1f s", step, finished.seconds, extra={"step_finished": finished})
            raise
        finished = StepFinished(step, time.perf_counter() - started, result)
        log.info("%s finished in %.1f s", step, finished.seconds, extra={"step_finished": finished})
        return result

    return timed


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
