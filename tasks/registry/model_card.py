"""The model card of a registered version: what it is, its data, params, scores, gate and lineage."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.config import Params
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage
from tasks.models.gguf import MODEL_LICENCES
from tasks.registry.tracking import flatten_params

BANKING77_ATTRIBUTION = (
    "BANKING77 dataset by PolyAI, CC BY 4.0 (https://huggingface.co/datasets/PolyAI/banking77)."
)


def base_model_line(spec: str) -> str:
    """The base model and, for the packaged ones, its licence and citation."""
    licence = MODEL_LICENCES.get(spec)
    return f"- `{spec}`: {licence}" if licence else f"- `{spec}`: under its own licence (see its model card)"


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


def render_model_card(
    params: Params, decision: GateDecision, lineage: Lineage, facts: CardFacts, texts: tuple[str, str]
) -> str:
    """A markdown model card: what the model is, its data, params, scores, gate and lineage.

    `texts` are the task type's first paragraph and its intended use and limitations.
    """
    data, reg, labels, run_id = params.data, params.register_, facts.labels, facts.run_id
    test = {k: f"{v:.4f}" if isinstance(v, float) else str(v) for k, v in facts.test_metrics.items()}
    attribution = BANKING77_ATTRIBUTION if data.name.startswith("banking77") else ""  # samples too
    reasons = "\n".join(f"- {reason}" for reason in decision.reasons) or "- (none given)"
    summary, limitations = texts
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

## Base model
{base_model_line(params.train.base_model)}

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
