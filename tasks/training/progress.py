"""Training progress as log records, for whoever shows it (the `refinery run` console, a log file).

Every task type's Trainer gets `ProgressLog` (through `fit`): a DEBUG record per optimizer step
and an INFO record per logged loss or validation metric, on the logger `PROGRESS_LOGGER`, each
with a `training_progress` attribute. The training code never knows about terminals: a console
subscribes to the logger (tasks/cli/console.py) and draws a bar or prints a line every N %.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

PROGRESS_LOGGER = "refinery.training"
log = logging.getLogger(PROGRESS_LOGGER)


@dataclass(frozen=True)
class TrainingProgress:
    """Where a training stands: steps done of the total, the last loss and validation metric."""

    step: int
    max_steps: int
    epoch: float
    loss: float | None
    metric_name: str | None
    metric: float | None

    @property
    def fraction(self) -> float:
        return self.step / self.max_steps if self.max_steps > 0 else 0.0

    def describe(self) -> str:
        """`step 40/120 (33 %) loss 1.234 eval_accuracy 0.812`, for a log file or a plain console."""
        parts = [f"step {self.step}/{self.max_steps} ({self.fraction:.0%})", f"epoch {self.epoch:.2f}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.metric_name is not None and self.metric is not None:
            parts.append(f"{self.metric_name} {self.metric:.4f}")
        return " ".join(parts)


class ProgressLog(TrainerCallback):
    """Log each step (DEBUG) and each loss / validation metric (INFO) as a `TrainingProgress`."""

    def __init__(self, metric_name: str) -> None:
        self.metric_name = f"eval_{metric_name}"
        self.loss: float | None = None
        self.metric: float | None = None

    def _emit(self, level: int, state: TrainerState) -> None:
        if not log.isEnabledFor(level):
            return
        progress = TrainingProgress(
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=float(state.epoch or 0.0),
            loss=self.loss,
            metric_name=self.metric_name if self.metric is not None else None,
            metric=self.metric,
        )
        log.log(level, "training %s", progress.describe(), extra={"training_progress": progress})

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._emit(logging.DEBUG, state)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._emit(logging.DEBUG, state)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        if "loss" in logs:
            self.loss = float(logs["loss"])
        if self.metric_name in logs:
            self.metric = float(logs[self.metric_name])
        if "loss" in logs or self.metric_name in logs:
            self._emit(logging.INFO, state)
