"""The console's step lines and training progress, on a terminal and elsewhere."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from tasks.cli.console import ConsoleHandler, step_line
from tasks.gating.decision import GateDecision
from tasks.steps.stage import StepFinished
from tasks.training.progress import TrainingProgress


def _progress(step: int, total: int = 100) -> logging.LogRecord:
    record = logging.LogRecord("refinery.training", logging.DEBUG, __file__, 0, "", None, None)
    progress = TrainingProgress(step, total, step / 50, 0.5, "eval_accuracy", 0.75)
    record.training_progress = progress
    return record


def _finished(step: str, result: object, failed: bool = False) -> logging.LogRecord:
    record = logging.LogRecord("refinery.steps", logging.INFO, __file__, 0, "", None, None)
    record.step_finished = StepFinished(step, 1.25, result, failed)
    return record


def test_step_lines_carry_the_figure_that_matters() -> None:
    tokenize = StepFinished("tokenize", 0.4, {"rows": {"train": 90, "test": 10}, "cache_hit": True})
    assert step_line(tokenize).startswith("✓ tokenize")
    assert "100 examples tokenized (cache hit" in step_line(tokenize)
    train = {"global_steps": 30, "train_samples_per_second": 12.5, "best_validation_accuracy": 0.8}
    assert "12.5 samples/s, best validation accuracy 0.8000" in step_line(StepFinished("train", 3, train))
    evaluate = {"accuracy": 0.91, "f1_macro": 0.9, "n_test": 40}
    assert "test accuracy 0.9100 on 40 examples" in step_line(StepFinished("evaluate", 1, evaluate))
    gate = GateDecision(passed=False, reasons=["accuracy 0.5 < 0.8"])
    assert "failed: accuracy 0.5 < 0.8" in step_line(StepFinished("gate", 0, gate))
    assert step_line(StepFinished("validate", 0.1, None, failed=True)).startswith("✗ validate")


def test_without_a_terminal_training_prints_a_line_every_fifth() -> None:
    out = io.StringIO()
    handler = ConsoleHandler(Console(file=out, force_terminal=False, width=100), every=0.2)
    for step in range(101):
        handler.emit(_progress(step))
    handler.emit(_finished("train", {"global_steps": 100}))
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines[:-1]] == ["20/100", "40/100", "60/100", "80/100", "100/100"]
    assert "\r" not in out.getvalue() and lines[-1].startswith("✓ train")


def test_on_a_terminal_training_is_one_live_bar_that_goes_away() -> None:
    out = io.StringIO()
    handler = ConsoleHandler(Console(file=out, force_terminal=True, width=100), every=0.2)
    for step in range(0, 101, 10):
        handler.emit(_progress(step))
    assert handler.progress is not None
    handler.emit(_finished("train", {"global_steps": 100}))
    assert handler.progress is None
    assert "eval_accuracy 0.7500" in out.getvalue() and "train" in out.getvalue()
