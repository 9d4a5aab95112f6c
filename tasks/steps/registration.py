"""The register step: one MLflow run per pipeline run; a passing model registered, released and reported.

The run records params, metrics, reports and datasets; a model that passed the gate is logged by
its task type, registered under the alias (`challenger`), then (`tasks.registry.release`) the
effective params and the gate report go on the run and version and the promotion policy applies.
"""

from __future__ import annotations

import os

import yaml

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision, GateFailed
from tasks.lineage.record import Lineage, current_lineage
from tasks.registry import registration
from tasks.registry.registration import RegistrationResult
from tasks.registry.release import release
from tasks.registry.retrying import is_transient, with_retries
from tasks.registry.tracking import effective_tracking_uri, redacted
from tasks.task_types import task_type_for

FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
RETRY_PARAMS = "register_params.yaml"  # the effective params, when registration must be done again


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
    """Log the run and register a passing model; write `registration.json`. Never raises on the gate.

    Idempotent: a retry completes the MLflow run and version of an earlier attempt. Transient
    tracking-store failures are retried with backoff (`register.retry_attempts`); when the store
    stays away, one line says how to register the trained model later without training again.
    """
    decision = GateDecision.from_json(layout.gate_json.read_text(encoding="utf-8"))
    lineage = current_lineage(params, flow_run_id=flow_run_id, layout=layout, deployment=deployment)
    cfg = params.register_

    def attempt() -> RegistrationResult:
        result = log_and_register(params, layout, decision, lineage)
        release(params, layout, decision, lineage, result)
        return result

    try:
        result = with_retries(attempt, cfg.retry_attempts, cfg.retry_wait_seconds)
    except Exception as err:
        if not is_transient(err):
            raise
        raise store_unavailable(params, layout, err) from None
    layout.registration_json.write_text(result.to_json(), encoding="utf-8")
    return result


def store_unavailable(params: Params, layout: RunLayout, err: Exception) -> RefineryError:
    """The one-line error of a tracking store that stayed away: the model is kept, and how to
    register it without training again (the effective params are written beside it)."""
    saved = layout.root / RETRY_PARAMS
    saved.write_text(yaml.safe_dump(params.as_dict(), sort_keys=False), encoding="utf-8")
    uri = redacted(effective_tracking_uri(params.register_))
    cause = str(err).splitlines()[0][:160].replace(effective_tracking_uri(params.register_), uri)
    return RefineryError(
        f"register: the MLflow tracking store {uri} is unavailable after "
        f"{params.register_.retry_attempts} attempts ({cause}); the model is trained in "
        f"{layout.model_dir}: register it without retraining, once the store is back, with "
        f"`python -m tasks.steps.registration --params {saved} --workdir {layout.root}`"
    )


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
