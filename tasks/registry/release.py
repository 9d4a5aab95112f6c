"""After registration: params and gate report on the run and version; the promotion policy.

`register.promotion: manual` leaves the new version at its alias (`challenger`); `auto` makes a
version that passed the gate `champion` through `tasks.registry.promotion.promote` (the old champion
becomes `previous-champion`), compare-and-set: only if the champion is still the version it was
compared with (else it stays `challenger`, with that reason in the report), and once per run.
The gate report is logged to the MLflow run and pointed at by the version's `gate.report` tag;
the model card (without its long tables) is the version's description.
"""

from __future__ import annotations

from typing import Any

import yaml
from mlflow import MlflowClient

from tasks.comparison.champion import ChampionComparison, read_comparison
from tasks.core.config import Params
from tasks.core.files import read_json
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision
from tasks.gating.report import build_report, report_json, report_markdown
from tasks.lineage.record import Lineage
from tasks.registry.idempotency import COMPLETE, COMPLETE_TAG
from tasks.registry.model_card import card_description
from tasks.registry.promotion import ChampionMoved, promote
from tasks.registry.registration import RegistrationResult
from tasks.registry.tracking import effective_tracking_uri, fetch_artifact, tracking_to

PARAMS_ARTIFACT = "params.yaml"
REPORT_TAG = "gate.report"
AUTO_USER = "refinery (register.promotion: auto)"
PROMOTION_TAG = "refinery.auto_promotion"  # the outcome of the automatic promotion, once it ran


def promotion_reason(comparison: ChampionComparison | None) -> str:
    """Why an automatic promotion happened, in one line."""
    if comparison is None:
        return "auto: gate passed, no champion to compare with"
    boot = comparison.bootstrap
    verdict = (
        f"no worse than v{comparison.champion_version} (margin {comparison.margin:.4f})"
        if comparison.test == "non_inferiority"
        else f"beats v{comparison.champion_version}"
    )
    return (
        f"auto: {verdict} on {boot.metric} by {boot.delta:+.4f} "
        f"({boot.confidence:.0%} CI [{boot.low:+.4f}, {boot.high:+.4f}]), no guard rail tripped"
    )


def apply_policy(
    client: MlflowClient,
    params: Params,
    decision: GateDecision,
    comparison: ChampionComparison | None,
    result: RegistrationResult,
) -> dict[str, str]:
    """Promote under `auto`, never under `manual`; return the policy and what happened."""
    cfg = params.register_
    policy = {"policy": cfg.promotion}
    if not result.registered or result.version is None or not decision.passed:
        return {**policy, "outcome": "not registered: nothing to promote"}
    if cfg.promotion == "manual":
        return {
            **policy,
            "outcome": f"alias '{cfg.alias}' set; promote with "
            f"`refinery promote {cfg.model_name} --version {result.version}`",
        }
    done = client.get_model_version(cfg.model_name, result.version).tags.get(PROMOTION_TAG)
    if done:  # an earlier attempt of this run promoted already: never promote twice
        return {**policy, "outcome": done}
    compared_with = comparison.champion_version if comparison is not None else None
    try:
        reason = promotion_reason(comparison)
        outcome = promote(client, cfg.model_name, result.version, reason, AUTO_USER, compared_with).message()
    except ChampionMoved as moved:  # compare-and-set: never promote over a champion not compared with
        outcome = f"left as '{cfg.alias}': {moved}; compare it again with a new run, or promote by hand"
    client.set_model_version_tag(cfg.model_name, result.version, PROMOTION_TAG, outcome)
    return {**policy, "outcome": outcome}


def write_report(
    layout: RunLayout,
    params: Params,
    decision: GateDecision,
    lineage: Lineage,
    result: RegistrationResult,
    promotion: dict[str, str],
) -> dict[str, Any]:
    """The gate report of `result` (JSON and Markdown) in the run directory; return it."""
    challenger = {
        "version": result.version,
        "mlflow_run_id": result.run_id,
        "lineage": {**lineage.tags(), "mlflow_run_id": result.run_id},
    }
    comparison = read_comparison(layout.comparison_json)
    metrics = read_json(layout.eval_metrics)
    report = build_report(params.register_.model_name, metrics, decision, comparison, challenger, promotion)
    layout.gate_report_json.write_text(report_json(report), encoding="utf-8")
    layout.gate_report_md.write_text(report_markdown(report), encoding="utf-8")
    return report


def release(
    params: Params, layout: RunLayout, decision: GateDecision, lineage: Lineage, result: RegistrationResult
) -> dict[str, Any]:
    """Log `params.yaml`, apply the promotion policy, write and attach the gate report; return it."""
    cfg = params.register_
    comparison = read_comparison(layout.comparison_json)
    run_id = result.run_id
    with tracking_to(effective_tracking_uri(cfg)) as client:
        client.log_text(run_id, yaml.safe_dump(params.as_dict(), sort_keys=False), PARAMS_ARTIFACT)
        promotion = apply_policy(client, params, decision, comparison, result)
        report = write_report(layout, params, decision, lineage, result, promotion)
        for path in (layout.gate_report_json, layout.gate_report_md):
            client.log_artifact(run_id, str(path))
        for path in (layout.comparison_json, layout.champion_predictions_csv):
            if path.is_file():  # the champion's predictions next to the challenger's eval/
                client.log_artifact(run_id, str(path), artifact_path=layout.comparison_dir.name)
        if result.registered and result.version is not None:
            report_uri = f"runs:/{run_id}/{layout.gate_report_md.name}"
            for key, value in {"mlflow_run_id": run_id, REPORT_TAG: report_uri}.items():
                client.set_model_version_tag(cfg.model_name, result.version, key, value)
            card = layout.model_card.read_text(encoding="utf-8")
            card_uri = f"runs:/{run_id}/{layout.model_card.name}"
            description = card_description(card, card_uri, report_uri)
            client.update_model_version(cfg.model_name, result.version, description=description)
        client.set_tag(run_id, COMPLETE_TAG, COMPLETE)  # last: a retry from here on changes nothing
    return report


def release_held(
    params: Params, layout: RunLayout, decision: GateDecision, lineage: Lineage, held: RegistrationResult
) -> dict[str, Any]:
    """The release's files for a version that already holds these weights (a re-run): its model card
    and a gate report written into this run directory, as `dvc.yaml` declares them. Nothing is
    registered, promoted or re-tagged: the version, its run and the aliases stay as they are."""
    cfg = params.register_
    with tracking_to(effective_tracking_uri(cfg)) as client:
        done = client.get_model_version(cfg.model_name, str(held.version)).tags.get(PROMOTION_TAG)
        fetch_artifact(client, held.run_id, layout, layout.model_card)
    kept = f"version {held.version} already holds these weights; its aliases are left as they are"
    promotion = {"policy": cfg.promotion, "outcome": done or kept}
    return write_report(layout, params, decision, lineage, held, promotion)
