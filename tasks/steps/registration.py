"""The register step: one MLflow run per pipeline run; a passing model registered, released and reported.

The run records params, metrics, reports and datasets; a model that passed the gate is logged by
its task type, registered under the alias (`challenger`), then (`tasks.registry.release`) the
effective params and the gate report go on the run and version and the promotion policy applies.
"""

from __future__ import annotations

import hashlib
import logging
import os

import yaml

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision, GateFailed
from tasks.lineage.record import Lineage, current_lineage, params_hash
from tasks.models.base_models import weights_fingerprint
from tasks.registry import registration
from tasks.registry.aliases import registration_lock
from tasks.registry.idempotency import KEY_TAG, WEIGHTS_TAG, registration_key
from tasks.registry.registration import RegistrationResult
from tasks.registry.release import release, release_held
from tasks.registry.retrying import is_transient, with_retries
from tasks.registry.tracking import effective_tracking_uri, redacted, store_exists, tracking_to
from tasks.steps.stage import STEP_LOGGER
from tasks.task_types import task_type_for

FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
RETRY_PARAMS = "register_params.yaml"  # the effective params, when registration must be done again
log = logging.getLogger(STEP_LOGGER)


def packaged_weights_hash(params: Params, layout: RunLayout) -> str:
    """The trained weights (config and weight files) under these params: a re-run with the same data,
    params and code is the same model, while other params (another gate, another packaging such as
    merged vs adapter) register a version of their own."""
    weights = weights_fingerprint(layout.model_dir)
    return hashlib.sha256(f"{weights} {params_hash(params)}".encode()).hexdigest()


def version_holding(params: Params, weights_hash: str) -> RegistrationResult | None:
    """The registered version of `register.model_name` whose weights are these, if there is one."""
    cfg = params.register_
    uri = effective_tracking_uri(cfg)
    if not store_exists(uri):
        return None
    with tracking_to(uri) as client:
        versions = client.search_model_versions(f"name = '{cfg.model_name}'")
        same = [v for v in versions if v.tags.get(WEIGHTS_TAG) == weights_hash]
        if not same:
            return None
        held = max(same, key=lambda v: int(v.version))
        experiment = client.get_run(held.run_id).info.experiment_id if held.run_id else ""
    name, version = cfg.model_name, str(held.version)
    return RegistrationResult(held.run_id or "", experiment, True, name, version, f"models:/{name}/{version}",
                              f"models:/{name}@{cfg.alias}")  # fmt: skip


def own_attempt(params: Params, held: RegistrationResult, key: str) -> bool:
    """Whether `held` came from an earlier attempt of this very pipeline run (its run carries this
    run's registration key): then the idempotent path completes it, rather than skipping it."""
    with tracking_to(effective_tracking_uri(params.register_)) as client:
        return bool(held.run_id) and client.get_run(held.run_id).data.tags.get(KEY_TAG) == key


def tag_weights(params: Params, result: RegistrationResult, weights_hash: str) -> None:
    """Record the weights' hash on the version just registered, for the next run's check."""
    if result.registered and result.version is not None:
        with tracking_to(effective_tracking_uri(params.register_)) as client:
            client.set_model_version_tag(result.model_name, result.version, WEIGHTS_TAG, weights_hash)


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
    weights_hash = packaged_weights_hash(params, layout) if decision.passed else ""
    lineage = current_lineage(params, flow_run_id=flow_run_id, layout=layout, deployment=deployment)
    cfg = params.register_

    def attempt() -> RegistrationResult:
        held = version_holding(params, weights_hash) if decision.passed else None
        if held is not None and not own_attempt(params, held, registration_key(params, layout, lineage)):
            # a re-run of the same training: never a second version of the same weights
            log.warning("register: version %s of %s already holds these weights (%s); not registered again",
                        held.version, held.model_name, WEIGHTS_TAG)  # fmt: skip
            release_held(params, layout, decision, lineage, held)  # the stage's declared outputs
            return held
        result = log_and_register(params, layout, decision, lineage)
        tag_weights(params, result, weights_hash)
        release(params, layout, decision, lineage, result)
        return result

    def attempt_alone() -> RegistrationResult:
        # two runs of the same training at once (same inputs): one registers, the other finds it
        with registration_lock(effective_tracking_uri(cfg), cfg.model_name):
            return attempt()

    try:
        result = with_retries(attempt_alone, cfg.retry_attempts, cfg.retry_wait_seconds)
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
