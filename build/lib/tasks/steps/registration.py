"""The register step: one MLflow run per pipeline run; a passing model registered, released and reported.

The run records params, metrics, reports and datasets; a model that passed the gate is logged by
its task type, registered under the alias (`challenger`), then (`tasks.registry.release`) the
effective params and the gate report go on the run and version and the promotion policy applies.
"""

from __future__ import annotations

import os

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision, GateFailed
from tasks.lineage.record import Lineage, current_lineage
from tasks.registry import registration
from tasks.registry.registration import RegistrationResult
from tasks.registry.release import release
from tasks.task_types import task_type_for

FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"


def log_and_register(
    params: Params, layout: RunLayout, decision: GateDecision, lineage: Lineage
) -> RegistrationResult:
    """Record the run in MLflow and, when the gate passed, register the task type's logged model."""
    task_type = task_type_for(params)
    labels = registration.run_labels(layout)
    return registration.log_and_register(
        params,
        layout,
        decision,
        lineage,
        evaluation_files=task_type.evaluation_files(layout),
        summary=task_type.card_texts(params, labels),
        log_model=lambda card: task_type.log_model(params, layout, card),
    )


def register_step(
    params: Params, layout: RunLayout, flow_run_id: str | None = None, deployment: str | None = None
) -> RegistrationResult:
    """Log the run and register a passing model; write `registration.json`. Never raises on the gate."""
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
    from tasks.steps.stage import stage_main

    stage_main(run_step)
