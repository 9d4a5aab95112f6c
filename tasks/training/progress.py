"""Training progress as log records, for whoever shows it (the `refinery run` console, a log file).

Every task type's Trainer gets `tasks.training.progress_log.ProgressLog` (through `fit`): a DEBUG
record per optimizer step and an INFO record per logged loss or validation metric, on the logger
`PROGRESS_LOGGER`, each with a `training_progress` attribute. The training code never knows about
terminals: a console subscribes to the logger (tasks/cli/console.py) and draws a bar or prints a
line every N %.
"""

from __future__ import annotations

from dataclasses import dataclass

PROGRESS_LOGGER = "refinery.training"


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
