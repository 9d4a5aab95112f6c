"""The task-type interface: everything that differs between, e.g., a classifier and a causal LM.

The pipeline steps (tasks/steps/) do the shared work (reading files, the tokenization cache,
checkpoints and reuse, the MLflow run, the gate) and ask the run's task type for the rest: its
data contract, how records become model inputs, how the model is built, trained and saved, how
it is scored and compared with a champion, and how it is packaged for MLflow.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import ConfigError
from tasks.core.layout import RunLayout
from tasks.data.splitting import Splits
from tasks.validation.report import ValidationResult

if TYPE_CHECKING:  # types only: a cached run (and every DVC stage's start) never loads these libraries
    from datasets import DatasetDict
    from mlflow.models.model import ModelInfo
    from transformers import Trainer, TrainerCallback

    from tasks.comparison.champion import ComparisonStats


class TaskType(ABC):
    """One kind of fine-tuning (`task:` in params.yaml), implemented once for every step."""

    name: str
    metrics: tuple[str, ...]  # the headline test metrics, in the order summaries show them
    champion_metrics: tuple[str, ...]  # what gate.champion.metric may name; the first is `auto`'s
    # its data contract reads the base model's tokenizer and config (token counts, context length):
    # they are part of the key under which a finished validation is reused
    validation_reads_model: bool = False
    # what train.metric_for_best_model may name (validation metrics and loss); empty: the task type checks
    selection_metrics: tuple[str, ...] = ()

    def check_params(self, params: Params) -> None:
        """Refuse, with one line naming the key, params this task type cannot run."""
        metric = params.gate.champion.metric
        if metric != "auto" and metric not in self.champion_metrics:
            allowed = " or ".join(self.champion_metrics)
            raise ConfigError(
                f"gate.champion.metric must be {allowed} when task is {self.name}, got {metric!r}"
            )
        selection = params.train.metric_for_best_model
        if self.selection_metrics and selection not in self.selection_metrics:
            allowed = ", ".join(self.selection_metrics)
            raise ConfigError(
                f"train.metric_for_best_model must be one of {allowed} when task is {self.name}, "
                f"got {selection!r}"
            )

    def check_gate_metrics(self, params: Params) -> None:
        """Refuse gate bounds on metrics this task type never reports (a copied threshold such as
        `accuracy` under `task: regression` would fail every run)."""
        known = {*self.metrics, "n_test"}
        gate = params.gate
        for key, bounds in (("gate.thresholds", gate.thresholds), ("gate.maximums", gate.maximums)):
            unknown = sorted(set(bounds) - known)
            if unknown:
                raise ConfigError(
                    f"{key}.{unknown[0]}: task {self.name} reports no such metric; "
                    f"its metrics are {', '.join(self.metrics)}"
                )

    def champion_metric(self, params: Params) -> str:
        """The metric the champion comparison bootstraps (`gate.champion.metric`, `auto` resolved)."""
        metric = params.gate.champion.metric
        return self.champion_metrics[0] if metric == "auto" else metric

    # validate
    @abstractmethod
    def validate(self, frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
        """Run this task type's data contract (a Great Expectations suite) on the raw frames."""

    @abstractmethod
    def split(self, frames: dict[str, pd.DataFrame], params: Params) -> Splits:
        """The validated frames as train / validation / test examples of this task type."""

    # tokenize
    @abstractmethod
    def tokenization_key(self, splits: Splits, params: Params) -> str:
        """What the tokenized splits depend on besides the tokenizer files: contents, rule, code."""

    @abstractmethod
    def tokenize(self, splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
        """Model inputs for every split, and the facts recorded with them (max_length, truncated)."""

    # train
    @abstractmethod
    def training_code(self) -> str:
        """A version of the code that shapes the trained weights (model, collator, loss)."""

    @abstractmethod
    def train(
        self,
        tokenized: DatasetDict,
        model_dir: Path,
        labels: list[str],
        params: Params,
        output_dir: Path,
        callbacks: list[TrainerCallback] | None = None,
    ) -> tuple[Trainer, dict[str, Any]]:
        """Build the model from `model_dir` and train it with checkpoints in `output_dir`;
        `callbacks` see every evaluation (a sweep's pruning)."""

    @abstractmethod
    def save_model(self, trainer: Trainer, model_dir: Path, layout: RunLayout) -> dict[str, Any]:
        """Save the trained model (and tokenizer) into `layout.model_dir`; facts for the summary."""

    # evaluate
    @abstractmethod
    def evaluate(self, params: Params, layout: RunLayout) -> dict[str, float]:
        """Score the run's model on its test split; write the task's tables; return the metrics."""

    @abstractmethod
    def evaluation_files(self, layout: RunLayout) -> list[Path]:
        """The evaluate step's files that become artifacts of the MLflow run."""

    # compare
    @abstractmethod
    def compare(self, params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
        """Score the champion at `model_uri` on the same test examples; the paired statistics."""

    # register
    @abstractmethod
    def card_texts(self, params: Params, labels: list[str]) -> tuple[str, str]:
        """The model card's first paragraph and its intended use and limitations."""

    @abstractmethod
    def log_model(self, params: Params, layout: RunLayout, card: str) -> ModelInfo:
        """Log the trained model in the active MLflow run: flavor, signature, input example."""
