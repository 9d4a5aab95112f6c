"""Registration: one MLflow run per pipeline run, and a registered version when the gate passed.

The run always records params, metrics, reports, datasets and the gate's reasons; only a model
that passed the gate is logged (by its task type), registered and given the alias
(`challenger` by default). A version is never left half-done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo

from tasks.core.config import Params, RegisterConfig
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.data.splitting import SPLITS
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage
from tasks.registry.model_card import card_facts, render_model_card
from tasks.registry.tracking import (
    effective_tracking_uri,
    log_artifacts,
    log_datasets,
    log_record,
    tracking_to,
)

_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
ModelLogger = Callable[[str], ModelInfo]  # the model card in, the logged model out


@dataclass(frozen=True)
class RegistrationResult:
    """Where the run was recorded and, when the gate passed, which version it became."""

    run_id: str
    experiment_id: str
    registered: bool
    model_name: str
    version: str | None
    model_uri: str | None  # models:/NAME/VERSION
    alias_uri: str | None  # models:/NAME@ALIAS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegistrationResult:
        return cls(**json.loads(text))


def run_files(layout: RunLayout, evaluation_files: list[Path]) -> list[Path]:
    """The run directory's files that become artifacts of the MLflow run (with the task type's
    evaluation files)."""
    return [
        layout.splits_dir / "labels.json",
        layout.validation_json,
        layout.validation_md,
        layout.train_metrics,
        layout.train_history,
        layout.training_curve_png,
        layout.eval_metrics,
        *evaluation_files,
        layout.gate_json,
    ]


def run_labels(layout: RunLayout) -> list[str]:
    """The label names the validate step wrote (empty for free-text tasks)."""
    labels: list[str] = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    return labels


def require_inputs(layout: RunLayout, files: list[Path], with_model: bool) -> None:
    """Stop with one line naming what is missing when an earlier step has not run."""
    needed = files + [layout.splits_dir / f"{split}.parquet" for split in SPLITS]
    if with_model:
        needed.append(layout.model_dir / "config.json")
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise RefineryError(f"register: missing {', '.join(missing)}; run the earlier steps first")


def pip_requirements(*extra: str) -> list[str]:
    """Pinned serving requirements (and the `extra` packages); MLflow's inference of them fails
    (it imports torchvision)."""
    pins = {
        name: installed_version(name).split("+")[0]
        for name in ("mlflow", "transformers", "tokenizers", "torch", *extra)
    }
    return [f"{name}=={pin}" for name, pin in pins.items()]


def register_version(
    client: MlflowClient, cfg: RegisterConfig, info: ModelInfo, run_id: str, tags: dict[str, str]
) -> str:
    """Create a version of `cfg.model_name` from the logged model and point `cfg.alias` at it.

    A version is never left half-done: if anything fails after it is created, it is deleted.
    """
    try:
        client.create_registered_model(cfg.model_name)
    except MlflowException as err:
        if err.error_code not in _EXISTS:
            raise
    created = client.create_model_version(
        cfg.model_name, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
    )
    try:
        client.set_registered_model_alias(cfg.model_name, cfg.alias, created.version)
        client.set_tag(run_id, "registered_version", f"{cfg.model_name}/{created.version}")
    except BaseException:
        client.delete_model_version(cfg.model_name, created.version)
        raise
    return str(created.version)


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the active experiment `name`, created when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException as err:  # created concurrently by another run
            if err.error_code not in _EXISTS:
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        raise RefineryError(
            f"register.experiment: '{name}' is deleted in MLflow; restore it or pick another name"
        )
    return str(experiment.experiment_id)


def log_and_register(
    params: Params,
    layout: RunLayout,
    decision: GateDecision,
    lineage: Lineage,
    evaluation_files: list[Path],
    summary: tuple[str, str],
    log_model: ModelLogger,
) -> RegistrationResult:
    """Record the pipeline run in MLflow; register the model under the alias if the gate passed.

    `summary` is the model card's first paragraph and its limitations; `log_model` logs the model
    (flavor, signature, input example) in the active run, given the card.
    """
    files = run_files(layout, evaluation_files)
    require_inputs(layout, files, with_model=decision.passed)
    cfg = params.register_
    with tracking_to(effective_tracking_uri(cfg)) as client:
        exp_id = experiment_id(client, cfg.experiment)
        with mlflow.start_run(experiment_id=exp_id, run_name=layout.root.resolve().name) as run:
            run_id = run.info.run_id
            log_record(client, run_id, params, layout, decision, lineage)
            sizes = log_datasets(params, layout, lineage)
            facts = card_facts(params, layout, sizes, run_id)
            card = render_model_card(params, decision, lineage, facts, summary)
            layout.model_card.write_text(card, encoding="utf-8")
            log_artifacts(client, run_id, layout, [*files, layout.model_card])
            if not decision.passed:
                return RegistrationResult(run_id, exp_id, False, cfg.model_name, None, None, None)
            info = log_model(card)
            tags = {**lineage.tags(), "gate.decision": decision.label}
            version = register_version(client, cfg, info, run_id, tags)
    return RegistrationResult(
        run_id=run_id,
        experiment_id=exp_id,
        registered=True,
        model_name=cfg.model_name,
        version=version,
        model_uri=f"models:/{cfg.model_name}/{version}",
        alias_uri=f"models:/{cfg.model_name}@{cfg.alias}",
    )
