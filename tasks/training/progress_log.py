"""The Trainer callback that reports training progress as `TrainingProgress` log records
(`tasks.training.progress`, which the console reads without loading transformers)."""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tasks.training.progress import PROGRESS_LOGGER, TrainingProgress

log = logging.getLogger(PROGRESS_LOGGER)


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
