"""Registration: one MLflow run per pipeline run, and a registered version when the gate passed.

The run always records params, metrics, reports, datasets and the gate's reasons; only a model
that passed the gate is logged (by its task type), registered and given the alias
(`challenger` by default). A version is never left half-done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo

from tasks.core.config import Params, RegisterConfig
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.data.splitting import SPLITS
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage
from tasks.registry.idempotency import (
    KEY_TAG,
    find_run,
    is_complete,
    logged_model_of,
    registration_key,
    version_of_run,
)
from tasks.registry.model_card import card_facts, render_model_card
from tasks.registry.retrying import is_transient
from tasks.registry.tracking import (
    RECORDED_TAG,
    effective_tracking_uri,
    fetch_artifact,
    log_artifacts,
    log_datasets,
    log_record,
    tracking_to,
)

_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
LOGGER = logging.getLogger(__name__)
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
        *([layout.train_rows] if layout.train_rows.is_file() else []),  # absent in runs made before it
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


def _delete_quietly(client: MlflowClient, name: str, version: str) -> None:
    """Undo a version a user error left without its alias; if even that fails, a retry completes it."""
    try:
        client.delete_model_version(name, version)
    except Exception as err:  # the store went away too: the next attempt finds the version by run
        LOGGER.warning("could not delete the half-registered version %s/%s: %s", name, version, err)


def register_version(
    client: MlflowClient, cfg: RegisterConfig, model: tuple[str, str], run_id: str, tags: dict[str, str]
) -> str:
    """The version of `cfg.model_name` made from `model` (URI, id), created unless an earlier
    attempt of this run made it, with `cfg.alias` pointing at it.

    A transient failure leaves the version for the retry to complete; a user error (e.g. a refused
    alias) deletes a version this call created.
    """
    try:
        client.create_registered_model(cfg.model_name)
    except MlflowException as err:
        if err.error_code not in _EXISTS:
            raise
    version = version_of_run(client, cfg.model_name, run_id)
    created = version is None
    if version is None:
        model_uri, model_id = model
        made = client.create_model_version(
            cfg.model_name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
        )
        version = str(made.version)
    try:
        client.set_registered_model_alias(cfg.model_name, cfg.alias, version)
        client.set_tag(run_id, "registered_version", f"{cfg.model_name}/{version}")
    except BaseException as err:
        if created and not is_transient(err):
            _delete_quietly(client, cfg.model_name, version)
        raise
    return version


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


def _result(run_id: str, exp_id: str, cfg: RegisterConfig, version: str | None) -> RegistrationResult:
    if version is None:
        return RegistrationResult(run_id, exp_id, False, cfg.model_name, None, None, None)
    return RegistrationResult(
        run_id=run_id,
        experiment_id=exp_id,
        registered=True,
        model_name=cfg.model_name,
        version=version,
        model_uri=f"models:/{cfg.model_name}/{version}",
        alias_uri=f"models:/{cfg.model_name}@{cfg.alias}",
    )


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
    (flavor, signature, input example) in the active run, given the card. An earlier attempt of
    the same pipeline run (`tasks.registry.idempotency`) is completed, not repeated.
    """
    files = run_files(layout, evaluation_files)
    require_inputs(layout, files, with_model=decision.passed)
    cfg = params.register_
    key = registration_key(params, layout, lineage)
    with tracking_to(effective_tracking_uri(cfg)) as client:
        exp_id = experiment_id(client, cfg.experiment)
        earlier = find_run(client, exp_id, key)
        if earlier is not None and is_complete(earlier):
            done = version_of_run(client, cfg.model_name, earlier.info.run_id) if decision.passed else None
            fetch_artifact(
                client, earlier.info.run_id, layout, layout.model_card
            )  # `dvc repro -f` removed it
            return _result(earlier.info.run_id, exp_id, cfg, done)
        if earlier is not None:
            LOGGER.warning("register: completing MLflow run %s of an earlier attempt", earlier.info.run_id)
        with _started(exp_id, layout, key, earlier) as run_id:
            if earlier is None or earlier.data.tags.get(RECORDED_TAG) != "true":
                log_record(client, run_id, params, layout, decision, lineage)
            sizes = log_datasets(params, layout, lineage)
            facts = card_facts(params, layout, sizes, run_id)
            card = render_model_card(params, decision, lineage, facts, summary)
            layout.model_card.write_text(card, encoding="utf-8")
            log_artifacts(client, run_id, layout, [*files, layout.model_card])
            if not decision.passed:
                return _result(run_id, exp_id, cfg, None)
            model = logged_model_of(client, exp_id, run_id)
            if model is None:
                info = log_model(card)
                model = (info.model_uri, info.model_id)
            tags = {**lineage.tags(), "gate.decision": decision.label}
            version = register_version(client, cfg, model, run_id, tags)
    return _result(run_id, exp_id, cfg, version)


@contextmanager
def _started(exp_id: str, layout: RunLayout, key: str, earlier: Run | None) -> Iterator[str]:
    """The active MLflow run of this attempt: the earlier attempt's run resumed, or a new one."""
    if earlier is not None:
        with mlflow.start_run(run_id=earlier.info.run_id) as run:
            yield run.info.run_id
        return
    name = layout.root.resolve().name
    with mlflow.start_run(experiment_id=exp_id, run_name=name, tags={KEY_TAG: key}) as run:
        yield run.info.run_id
