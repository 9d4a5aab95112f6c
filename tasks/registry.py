"""Registration: one MLflow run per pipeline run, and a registered version when the gate passed.

The run always records params, metrics, reports, datasets and the gate's reasons; only a model
that passed the gate is logged, registered and given the alias (`challenger` by default).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema

from tasks import sft_registry
from tasks.config import Params, RegisterConfig
from tasks.data import SPLITS
from tasks.errors import RefineryError
from tasks.gating import GateDecision, GateFailed
from tasks.layout import RunLayout
from tasks.tracking import (
    Lineage,
    current_lineage,
    effective_tracking_uri,
    flatten_params,
    log_artifacts,
    log_datasets,
    log_record,
    read_json,
    tracking_to,
)

__all__ = [
    "Lineage",
    "RegistrationResult",
    "current_lineage",
    "log_and_register",
    "register_step",
    "run_step",
]

FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string")]),
    outputs=Schema([ColSpec("string", name="label"), ColSpec("double", name="score")]),
)
BANKING77_ATTRIBUTION = (
    "BANKING77 dataset by PolyAI, CC BY 4.0 (https://huggingface.co/datasets/PolyAI/banking77)."
)
_CLASSIFIER_LIMITATIONS = """\
- Routes short texts like those of `{name}` to one of the labels above; it always answers
  with one of them, so texts outside those intents get a confident-looking wrong label.
- Scores are softmax outputs, not calibrated probabilities. Check the per-class report before
  relying on rare labels, and keep a person in the loop for decisions that affect customers.
- Performance on other domains, languages or writing styles is unknown.
"""
_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


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


def reported_files(layout: RunLayout, task: str = "sequence_classification") -> list[Path]:
    """The run directory's files that become artifacts of the MLflow run."""
    evaluated = (
        sft_registry.reported_files(layout)
        if task == "causal_lm"
        else [layout.per_class_csv, layout.confusion_png, layout.predictions_csv]
    )
    return [
        layout.splits_dir / "labels.json",
        layout.validation_json,
        layout.validation_md,
        layout.train_metrics,
        layout.train_history,
        layout.eval_metrics,
        *evaluated,
        layout.gate_json,
    ]


def _require_inputs(layout: RunLayout, with_model: bool, task: str = "sequence_classification") -> None:
    needed = reported_files(layout, task) + [layout.splits_dir / f"{split}.parquet" for split in SPLITS]
    if with_model:
        needed.append(layout.model_dir / "config.json")
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise RefineryError(f"register: missing {', '.join(missing)}; run the earlier steps first")


def _table(rows: dict[str, str], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    escape = str.maketrans({"|": "\\|", "\n": " "})
    lines += [f"| `{key}` | {str(value).translate(escape)} |" for key, value in rows.items()]
    return "\n".join(lines)


@dataclass(frozen=True)
class CardFacts:
    """What the model card reports beyond params, gate and lineage."""

    labels: list[str]
    sizes: dict[str, int]
    test_metrics: dict[str, float]
    run_id: str


def render_model_card(params: Params, decision: GateDecision, lineage: Lineage, facts: CardFacts) -> str:
    """A markdown model card: what the model is, its data, params, scores, gate and lineage."""
    data, reg, labels, run_id = params.data, params.register_, facts.labels, facts.run_id
    test = {k: f"{v:.4f}" if isinstance(v, float) else str(v) for k, v in facts.test_metrics.items()}
    attribution = BANKING77_ATTRIBUTION if data.name.startswith("banking77") else ""  # samples too
    reasons = "\n".join(f"- {reason}" for reason in decision.reasons) or "- (none given)"
    summary, limitations = (
        sft_registry.card_texts(params)
        if params.task == "causal_lm"
        else (f"Text classifier fine-tuned by Refinery from `{params.train.base_model}` into "
              f"{len(labels)} labels.", _CLASSIFIER_LIMITATIONS.format(name=data.name))
    )  # fmt: skip
    registered = (
        f"registered as `{reg.model_name}` with alias `{reg.alias}`"
        if decision.passed
        else "not registered: the gate failed"
    )
    return f"""# Model card: {reg.model_name}

{summary}

## Data
- Dataset: **{data.name}** ({data.train_path}{f", {data.test_path}" if data.test_path else ""})
- Data hash: `{lineage.data_hash}`
- Examples: {", ".join(f"{split} {n}" for split, n in facts.sizes.items())}
- Labels: {", ".join(labels)}
{f"- Attribution: {attribution}" if attribution else ""}

## Parameters
{_table(flatten_params(params), ("param", "value"))}

## Test metrics
{_table(test, ("metric", "value"))}

## Gate: {decision.label}
{reasons}

## Lineage
- Git commit: `{lineage.git_commit}`{" (uncommitted changes)" if lineage.git_dirty else ""}
- Params hash: `{lineage.params_hash}`
- Prefect flow run: `{lineage.prefect_flow_run_id or "none"}`
- MLflow run: `{run_id}`; {registered}

## Intended use and limitations
{limitations}"""


def pip_requirements() -> list[str]:
    """Pinned serving requirements; MLflow's inference of them fails (it imports torchvision)."""
    pins = {
        name: installed_version(name).split("+")[0]
        for name in ("mlflow", "transformers", "tokenizers", "torch")
    }
    return [f"{name}=={pin}" for name, pin in pins.items()]


def example_texts(layout: RunLayout, count: int = 3) -> list[str]:
    """A few test texts: the input example stored with the model."""
    frame = pd.read_parquet(layout.splits_dir / "test.parquet", columns=["text"])
    return [str(text) for text in frame["text"].head(count)]


def log_model(layout: RunLayout, card: str, examples: list[str]) -> ModelInfo:
    """Log the fine-tuned model and tokenizer as a text-classification pipeline in the active run."""
    from huggingface_hub import ModelCard, ModelCardData
    from transformers import AutoModelForSequenceClassification

    from tasks.tokenization import load_tokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(layout.model_dir))
    card_data = ModelCardData(library_name="transformers", pipeline_tag="text-classification").to_yaml()
    info: ModelInfo = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": load_tokenizer(layout.model_dir)},
        task="text-classification",
        name="model",
        signature=SIGNATURE,
        input_example=examples,
        pip_requirements=pip_requirements(),
        model_card=ModelCard(f"---\n{card_data}\n---\n{card}"),  # ours: MLflow skips the Hub lookup
    )
    return info


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
    params: Params, layout: RunLayout, decision: GateDecision, lineage: Lineage
) -> RegistrationResult:
    """Record the pipeline run in MLflow; register the model under the alias if the gate passed."""
    _require_inputs(layout, with_model=decision.passed, task=params.task)
    cfg = params.register_
    with tracking_to(effective_tracking_uri(cfg)) as client:
        exp_id = experiment_id(client, cfg.experiment)
        with mlflow.start_run(experiment_id=exp_id, run_name=layout.root.resolve().name) as run:
            run_id = run.info.run_id
            log_record(client, run_id, params, layout, decision, lineage)
            sizes = log_datasets(params, layout, lineage)
            labels = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
            facts = CardFacts(labels, sizes, read_json(layout.eval_metrics), run_id)
            card = render_model_card(params, decision, lineage, facts)
            layout.model_card.write_text(card, encoding="utf-8")
            log_artifacts(client, run_id, layout, [*reported_files(layout, params.task), layout.model_card])
            if not decision.passed:
                return RegistrationResult(run_id, exp_id, False, cfg.model_name, None, None, None)
            info = (
                sft_registry.log_causal_lm(
                    params, layout, card, sft_registry.example_prompts(layout), pip_requirements()
                )
                if params.task == "causal_lm"
                else log_model(layout, card, example_texts(layout))
            )
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


def register_step(
    params: Params, layout: RunLayout, flow_run_id: str | None = None, deployment: str | None = None
) -> RegistrationResult:
    """Log the run and register a passing model; write `registration.json`. Never raises on the gate.

    Then (`tasks.release`): the effective params and the gate report on the run and version, and
    the promotion policy.
    """
    from tasks.release import release

    decision = GateDecision.from_json(layout.gate_json.read_text(encoding="utf-8"))
    lineage = current_lineage(params, flow_run_id=flow_run_id, layout=layout, deployment=deployment)
    result = log_and_register(params, layout, decision, lineage)
    release(params, layout, decision, lineage, result)
    layout.registration_json.write_text(result.to_json(), encoding="utf-8")
    return result


def run_step(params: Params, layout: RunLayout) -> RegistrationResult:
    """`register_step` as a DVC stage: then fail the stage if the gate failed and `gate.on_fail` is fail."""
    result = register_step(params, layout, flow_run_id=os.environ.get(FLOW_RUN_ENV) or None)
    decision = GateDecision.from_json(layout.gate_json.read_text(encoding="utf-8"))
    if not decision.passed and params.gate.on_fail == "fail":
        raise GateFailed("gate failed: " + "; ".join(decision.reasons))
    return result


if __name__ == "__main__":
    from tasks.stage import stage_main

    stage_main(run_step)
