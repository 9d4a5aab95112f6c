"""The terminal of `refinery run`: one line per step, one progress bar for training, then the summary.

Everything else (Prefect's run logs, Trainer dicts, `datasets` bars, warnings, a temporary API's
output) goes to the run's log file `runs/<id>/run.log`, which keeps it all; `--verbose` shows it
on the terminal too. The steps know nothing of this: they log `StepFinished` records
(tasks/steps/stage.py) and the Trainer logs `TrainingProgress` (tasks/training/progress.py);
`ConsoleSession` subscribes to both loggers. On a terminal the bar is a live `rich` progress bar;
elsewhere (CI, `nohup`, a pipe) there is no carriage return: a training line every `every` of it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tasks.steps.stage import STEP_LOGGER, StepFinished
from tasks.training.progress import PROGRESS_LOGGER, TrainingProgress

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _count(rows: Any) -> int:
    return sum(int(v) for v in rows.values()) if isinstance(rows, dict) else 0


def _train_figure(summary: dict[str, Any]) -> str:
    if summary.get("reused"):
        return "reused the finished training with the same data, params and code"
    best = [f"best validation {k.removeprefix('best_validation_')} {v:.4f}"
            for k, v in summary.items() if k.startswith("best_validation_")]  # fmt: skip
    speed = f"{summary.get('train_samples_per_second', 0.0):.1f} samples/s"
    return ", ".join([f"{summary.get('global_steps', 0)} steps", *_resumption(summary), speed, *best])


def _resumption(summary: dict[str, Any]) -> list[str]:
    """Where an interrupted training went on from, and the unusable checkpoints it skipped."""
    skipped = int(summary.get("checkpoints_skipped") or 0)
    unusable = f" ({skipped} newer checkpoint(s) unusable, removed: see run.log)" if skipped else ""
    if summary.get("resumed"):
        return [f"resumed from {summary.get('resumed_from') or 'a checkpoint'}{unusable}"]
    return [f"started afresh{unusable}"] if skipped else []


def _compare_figure(result: dict[str, Any]) -> str:
    version = result.get("champion_version")
    if version is None:
        return str(result.get("reason", "no champion"))
    boot = result.get("bootstrap") or {}
    delta = boot.get("delta")
    shown = f": {boot.get('metric', 'metric')} delta {delta:+.4f}" if isinstance(delta, float) else ""
    return f"against champion version {version}{shown}"


def step_figure(finished: StepFinished) -> str:
    """The one figure that matters for each step (rows, cache hit, speed, accuracy, decision, URI)."""
    result, step = finished.result, finished.step
    if finished.failed:
        return "failed (the error follows)"
    if step == "validate" and isinstance(result, dict):
        rows = sum(int(v) for k, v in result.items() if k.startswith("rows_"))
        return f"{rows} rows validated, {int(result.get('expectations_evaluated', 0))} expectations met"
    if step == "tokenize" and isinstance(result, dict):
        cache = "cache hit" if result.get("cache_hit") else "cache miss"
        examples = _count(result.get("rows"))
        return f"{examples} examples tokenized ({cache}, max_length {result.get('max_length')})"
    if step == "train" and isinstance(result, dict):
        return _train_figure(result)
    if step == "evaluate" and isinstance(result, dict):
        name, value = next(((k, v) for k, v in result.items() if k != "n_test"), ("metric", float("nan")))
        return f"test {name} {value:.4f} on {int(result.get('n_test', 0))} examples"
    if step == "compare" and isinstance(result, dict):
        return _compare_figure(result)
    if step == "gate" and hasattr(result, "passed"):
        return "passed" if result.passed else "failed: " + "; ".join(result.reasons)
    if step == "register" and hasattr(result, "registered"):
        return str(result.model_uri) if result.registered else "nothing registered (the gate failed)"
    return ""


def step_line(finished: StepFinished) -> str:
    """`✓ tokenize     0.4 s  1,200 examples tokenized (cache hit)`."""
    mark = "✗" if finished.failed else "✓"
    return f"{mark} {finished.step:<9} {finished.seconds:6.1f} s  {step_figure(finished)}"


class ConsoleHandler(logging.Handler):
    """Step lines, and training progress as a live bar (terminal) or a line every `every` (elsewhere)."""

    def __init__(self, console: Console, every: float = 0.2) -> None:
        super().__init__(logging.DEBUG)
        self.console, self.every = console, every
        self.progress: Progress | None = None
        self.bar: TaskID | None = None
        self.next_line = every

    def emit(self, record: logging.LogRecord) -> None:
        finished: StepFinished | None = getattr(record, "step_finished", None)
        progress: TrainingProgress | None = getattr(record, "training_progress", None)
        if finished is None and progress is None and record.levelno >= logging.WARNING:
            self.console.print(f"  ! {record.getMessage()}", highlight=False, markup=False, soft_wrap=True)
        if finished is not None:
            self._close_bar()
            self.console.print(step_line(finished), highlight=False, markup=False, soft_wrap=True)
        elif progress is not None and progress.max_steps > 0:
            self._show(progress)

    def _show(self, progress: TrainingProgress) -> None:
        if not self.console.is_terminal:
            if progress.fraction + 1e-9 >= self.next_line:
                self.console.print(
                    f"  train {progress.describe()}", highlight=False, markup=False, soft_wrap=True
                )
                while self.next_line <= progress.fraction + 1e-9:
                    self.next_line += self.every
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("  train"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=self.console, transient=True,
            )  # fmt: skip
            self.bar = self.progress.add_task("", total=progress.max_steps)
            self.progress.start()
        assert self.bar is not None
        shown = progress.describe().split(") ", 1)[-1]  # epoch, loss, metric: the bar shows the steps
        self.progress.update(self.bar, completed=progress.step, description=shown)

    def _close_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress, self.bar, self.next_line = None, None, self.every


def _is_console_handler(handler: logging.Handler) -> bool:
    """A handler writing to a stream that is not a file or a buffer: a terminal, or a capture of one."""
    stream = getattr(handler, "stream", None)
    return (
        isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
        and not isinstance(stream, io.StringIO)
    )


def _all_loggers() -> list[logging.Logger]:
    named = [v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)]
    return [logging.getLogger(), *named]


@contextlib.contextmanager
def _routed_to(log_file: logging.FileHandler) -> Iterator[None]:
    """Swap every logging handler that writes to the terminal for the log file, then swap back."""
    swapped: list[tuple[logging.Logger, logging.Handler]] = []
    for logger in _all_loggers():
        for handler in list(logger.handlers):
            if _is_console_handler(handler):
                logger.removeHandler(handler)
                swapped.append((logger, handler))
                if log_file not in logger.handlers:
                    logger.addHandler(log_file)
    try:
        yield
    finally:
        for logger, handler in swapped:
            logger.removeHandler(log_file)
            logger.addHandler(handler)


@contextlib.contextmanager
def _also_to(log_file: logging.FileHandler) -> Iterator[None]:
    """Loggers that do not propagate to the root (Prefect's, transformers') also write the log file."""
    isolated = [logger for logger in _all_loggers()[1:] if not logger.propagate and logger.handlers]
    for logger in isolated:
        logger.addHandler(log_file)
    try:
        yield
    finally:
        for logger in isolated:
            logger.removeHandler(log_file)


@contextlib.contextmanager
def _descriptors_to(path: Path) -> Iterator[TextIO]:
    """Point file descriptors 1 and 2 (child processes, C libraries) and sys.stdout/err at `path`;
    yield a stream on the terminal that `sys.stdout` was."""
    terminal = sys.stdout
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    own_terminal = _is_fd(terminal, 1)
    if own_terminal:
        terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    streams = (sys.stdout, sys.stderr)
    with path.open("a", encoding="utf-8", buffering=1) as log:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        sys.stdout = sys.stderr = log
        try:
            yield terminal
        finally:
            sys.stdout, sys.stderr = streams
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            if own_terminal:
                terminal.close()
            _unbind(log)


def _unbind(log: TextIO) -> None:
    """Handlers (re)configured during the session on `sys.stderr`, the log: back to the process's
    own stderr (not a stand-in such as pytest's capture, which closes after the test). Every
    handler, attached or not (a library may hold one to re-attach later): logging's own registry."""
    for ref in list(logging._handlerList):  # type: ignore[attr-defined]
        handler = ref()
        if isinstance(handler, logging.StreamHandler) and handler.stream is log:
            handler.setStream(sys.__stderr__)
        console = getattr(handler, "console", None)  # Prefect's handler prints through a rich console
        if console is not None and getattr(console, "file", None) is log:
            console.file = sys.__stderr__


def _is_fd(stream: TextIO, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (OSError, ValueError, AttributeError):
        return False


def _quiet_libraries() -> None:
    """Progress bars of `datasets` (every save, map and load) and `transformers` downloads: off."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


@contextlib.contextmanager
def console_session(log_path: Path, verbose: bool = False, every: float = 0.2) -> Iterator[Console]:
    """Step lines and the training bar on the terminal; everything else into `log_path`.

    `verbose`: the libraries' output stays on the terminal as well (and still goes to the log).
    Yields the console, for the summary and the error after the run.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root, events = logging.getLogger(), [logging.getLogger(STEP_LOGGER), logging.getLogger(PROGRESS_LOGGER)]
    previous_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(file_handler)
    logging.captureWarnings(True)
    with contextlib.ExitStack() as stack:
        terminal: TextIO = sys.stdout
        if not verbose:
            _quiet_libraries()
            stack.enter_context(_routed_to(file_handler))
            terminal = stack.enter_context(_descriptors_to(log_path))
        else:
            stack.enter_context(_also_to(file_handler))
        console = Console(file=terminal, highlight=False)
        handler = ConsoleHandler(console, every)
        for logger in events:
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
        try:
            yield console
        finally:
            handler._close_bar()
            for logger in events:
                logger.removeHandler(handler)
            root.removeHandler(file_handler)
            root.setLevel(previous_level)
            logging.captureWarnings(False)
            file_handler.close()
