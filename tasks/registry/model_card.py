"""The model card of a registered version: what it is, its data, params, scores, gate and lineage."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import ModelSourceError
from tasks.core.files import read_json
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage
from tasks.models.base_models import base_model_dir, model_license
from tasks.models.gguf import MODEL_LICENCES
from tasks.registry.tracking import flatten_params


def base_model_line(spec: str, stated: str | None = None) -> str:
    """The base model with its licence: for the packaged ones, the licence and citation we checked;
    else what its own model card states (`stated`), never a guess."""
    licence = MODEL_LICENCES.get(spec)
    if licence:
        return f"- `{spec}`: {licence}"
    if stated:
        return f"- `{spec}`: licence {stated} (as its model card states)"
    return f"- `{spec}`: under its own licence (see its model card)"


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
    per_class: list[dict[str, Any]] = field(default_factory=list)  # label, precision, recall, f1, support
    training: dict[str, Any] = field(default_factory=dict)  # the train step's summary (train/metrics.json)
    base_license: str | None = None  # from the base model's own card; never guessed


_LONG_SECTIONS = ("## Parameters", "### Per class", "## Lineage")  # in the card file, not the description


def card_description(card: str, card_uri: str, report_uri: str, limit: int = 4900) -> str:
    """The registered version's description: the model card without its long tables (params, per
    class, lineage), cut to MLflow's limit (5,000 characters on Postgres), then where the full
    card and the gate report are."""
    sections = re.split(r"(?m)^(?=#{2,3} )", card)
    head = "".join(s for s in sections if not s.startswith(_LONG_SECTIONS)).rstrip()
    footer = (
        f"\n\nFull model card: `{card_uri}`; gate report (comparison, per-class recall): `{report_uri}`\n"
    )
    if len(head) + len(footer) > limit:
        head = head[: limit - len(footer) - 1].rstrip() + "…"
    return head + footer


def card_facts(params: Params, layout: RunLayout, sizes: dict[str, int], run_id: str) -> CardFacts:
    """What the run directory and the base model's own card say, for the model card."""
    labels: list[str] = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    per_class = (
        pd.read_csv(layout.per_class_csv, keep_default_na=False).to_dict("records")
        if layout.per_class_csv.is_file()
        else []
    )
    training = read_json(layout.train_metrics) if layout.train_metrics.is_file() else {}
    try:
        base_license = model_license(base_model_dir(params, layout))
    except ModelSourceError:
        base_license = None
    return CardFacts(labels, sizes, read_json(layout.eval_metrics), run_id, per_class, training, base_license)


def _per_class_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(not a classifier: see the test metrics above)"
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    scores = ("precision", "recall", "f1")
    for r in rows:
        shown = " | ".join(f"{float(r[k]):.4f}" for k in scores)
        lines.append(f"| {r['label']} | {shown} | {int(r['support'])} |")
    return "\n".join(lines)


def _procedure(params: Params, training: dict[str, Any]) -> str:
    """How the weights were made: base model, epochs and steps, precision, speed, hardware."""
    train, lora = params.train, params.train.lora
    method = f"LoRA (r={lora.r}, alpha={lora.alpha})" if lora.enabled else "full fine-tuning"
    steps, epochs = training.get("global_steps", "?"), float(training.get("epochs_completed", 0.0))
    speed = float(training.get("train_samples_per_second", 0.0))
    runtime = float(training.get("train_runtime_s", 0.0))
    return (
        f"- Method: {method}, learning rate {train.learning_rate:g}, batch size {train.batch_size}, "
        f"{steps} steps ({epochs:.2f} epochs), seed {train.seed}\n"
        f"- Precision: {training.get('precision', 'not recorded')}; {runtime:.0f} s at {speed:.1f} samples/s"
        f"{' (a finished training with the same inputs, reused)' if training.get('reused') else ''}\n"
        f"- Hardware: {training.get('hardware', 'not recorded')}"
    )


def render_model_card(
    params: Params, decision: GateDecision, lineage: Lineage, facts: CardFacts, texts: tuple[str, str]
) -> str:
    """A markdown model card: what the model is, its data, params, scores, gate and lineage.

    `texts` are the task type's first paragraph and its intended use and limitations.
    """
    data, reg, labels, run_id = params.data, params.register_, facts.labels, facts.run_id
    test = {k: f"{v:.4f}" if isinstance(v, float) else str(v) for k, v in facts.test_metrics.items()}
    licence = data.license or "not stated (set data.license)"
    reasons = "\n".join(f"- {reason}" for reason in decision.reasons) or "- (none given)"
    summary, limitations = texts
    registered = (
        f"registered as `{reg.model_name}` with alias `{reg.alias}`"
        if decision.passed
        else "not registered: the gate failed"
    )
    started_from = (
        f"\n- Continued from registered version `{lineage.base_model_version}` "
        "(its own card names the model it started from)"
        if lineage.base_model_version
        else ""
    )
    return f"""# Model card: {reg.model_name}

{summary}

## Base model
{base_model_line(params.train.base_model, facts.base_license)}{started_from}
- Weights hash: `{lineage.base_model_hash}`

## Data
- Dataset: **{data.name}** ({data.train_path}{f", {data.test_path}" if data.test_path else ""})
- Licence: {licence}
- Data hash: `{lineage.data_hash}`
- Examples: {", ".join(f"{split} {n}" for split, n in facts.sizes.items())}
- Labels: {", ".join(labels)}

## Training procedure
{_procedure(params, facts.training)}

## Parameters
{_table(flatten_params(params), ("param", "value"))}

## Test metrics
{_table(test, ("metric", "value"))}

### Per class
{_per_class_table(facts.per_class)}

## Gate: {decision.label}
{reasons}

## Lineage
- Git commit: `{lineage.git_commit}`{" (uncommitted changes)" if lineage.git_dirty else ""}
- Params hash: `{lineage.params_hash}`
- Prefect flow run: `{lineage.prefect_flow_run_id or "none"}`
- MLflow run: `{run_id}`; {registered}

## Intended use and limitations
{limitations}"""
