"""Where each step reads and writes inside a run directory.

`dvc repro` uses `artifacts/`; a Prefect flow run uses `runs/<flow-run-name>/`.
Both go through the same step functions, so the file names live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def new_run_dir(parent: Path, prefix: str = "") -> Path:
    """Create and return `parent/<prefix><UTC timestamp>`, a directory no other run has: stamped to
    the microsecond, and suffixed `-2`, `-3`, ... when a run started in the same instant took it."""
    parent.mkdir(parents=True, exist_ok=True)
    name = prefix + datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for attempt in range(1, 1000):
        candidate = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            candidate.mkdir()  # atomic: exactly one caller creates a given name
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent}: no free run directory named {name}-N")


@dataclass(frozen=True)
class RunLayout:
    """The files of one pipeline run, relative to `root`."""

    root: Path

    @property
    def run_log(self) -> Path:
        """Everything the libraries said during `refinery run` (the terminal shows one line per step)."""
        return self.root / "run.log"

    @property
    def sweep_json(self) -> Path:
        """Written by `refinery sweep` into the winner's run: the sweep's study and MLflow parent run."""
        return self.root / "sweep.json"

    @property
    def splits_dir(self) -> Path:
        return self.root / "splits"

    @property
    def train_rows(self) -> Path:
        """Hashes of the examples the model learned from (train and validation), one a line: a later
        run checks that its test rows are not among them (tasks.data.splitting.row_hashes)."""
        return self.splits_dir / "train_rows.txt"

    @property
    def base_model_pin(self) -> Path:
        """The registered version `train.base_model: models:/...` resolved to at the run's start: every
        step trains on that one, even if the alias moves (with the splits: DVC tracks it as one out)."""
        return self.splits_dir / "base_model.json"

    @property
    def validation_dir(self) -> Path:
        return self.root / "validation"

    @property
    def validation_json(self) -> Path:
        return self.validation_dir / "result.json"

    @property
    def validation_md(self) -> Path:
        return self.validation_dir / "report.md"

    @property
    def tokenized_dir(self) -> Path:
        return self.root / "tokenized"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def train_metrics(self) -> Path:
        return self.train_dir / "metrics.json"

    @property
    def train_history(self) -> Path:
        return self.train_dir / "history.csv"

    @property
    def training_curve_png(self) -> Path:
        """Train loss and validation metrics per step."""
        return self.train_dir / "training_curve.png"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def eval_metrics(self) -> Path:
        return self.eval_dir / "metrics.json"

    @property
    def per_class_csv(self) -> Path:
        return self.eval_dir / "per_class.csv"

    @property
    def confusion_png(self) -> Path:
        return self.eval_dir / "confusion_matrix.png"

    @property
    def per_class_f1_png(self) -> Path:
        return self.eval_dir / "per_class_f1.png"

    @property
    def predictions_csv(self) -> Path:
        return self.eval_dir / "predictions.csv"

    @property
    def generations_csv(self) -> Path:
        """causal_lm: prompt, reference and generated output of each held-out example."""
        return self.eval_dir / "generations.csv"

    @property
    def comparison_dir(self) -> Path:
        """The champion's predictions on this run's test split and the paired comparison."""
        return self.root / "comparison"

    @property
    def champion_predictions_csv(self) -> Path:
        return self.comparison_dir / "champion_predictions.csv"

    @property
    def comparison_json(self) -> Path:
        return self.comparison_dir / "comparison.json"

    @property
    def gate_json(self) -> Path:
        return self.root / "gate.json"

    @property
    def gate_report_json(self) -> Path:
        return self.root / "gate_report.json"

    @property
    def gate_report_md(self) -> Path:
        return self.root / "gate_report.md"

    @property
    def registration_json(self) -> Path:
        return self.root / "registration.json"

    @property
    def model_card(self) -> Path:
        return self.root / "model_card.md"
