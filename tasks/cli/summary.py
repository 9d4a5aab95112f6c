"""The end-of-run summary a person reads: metrics, gate decision and reasons, model URI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tasks.core.config import Params
from tasks.gating.decision import GateDecision
from tasks.registry.tracking import effective_tracking_uri
from tasks.task_types import task_type_for


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that opens the MLflow UI on this run's store."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"


def training_line(training: dict[str, Any] | None) -> str:
    """How the model came to be: trained in this run, or a finished training with the same key reused."""
    if training is None:
        return "unknown (no train/metrics.json)"
    if training.get("reused"):
        return "reused: a finished training with the same key (train.reuse_trained); nothing was trained"
    steps = training.get("global_steps")
    line = f"trained in this run ({steps} steps)" if steps is not None else "trained in this run"
    if training.get("resumed"):
        line += f", resumed from {training.get('resumed_from') or 'a checkpoint'} of an interrupted run"
    if training.get("checkpoints_skipped"):
        line += f"; {training['checkpoints_skipped']} unusable checkpoint(s) skipped (run.log says why)"
    if training.get("validation_examples") == 0:
        line += "; no validation split (data.validation_fraction): no evaluation or early stopping"
    return line


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow_ui_command` serves a local store


def artifact_url(tracking_uri: str, run_id: str, path: str) -> str:
    """The URL at which the MLflow UI serves one artifact of a run (a local store: `mlflow ui`)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/get-artifact?path={quote(path)}&run_uuid={run_id}"


def plots_markdown(tracking_uri: str, run_id: str, plots: list[tuple[str, str]]) -> str:
    """Markdown showing each (title, artifact path) plot by its MLflow artifact URL."""
    lines = ["# Refinery run plots", ""]
    for title, path in plots:
        url = artifact_url(tracking_uri, run_id, path)
        lines += [f"## {title}", "", f"![{title}]({url})", "", f"[{path}]({url})", ""]
    if not tracking_uri.startswith("http"):
        lines.append(f"Images load while the MLflow UI runs: `{mlflow_ui_command(tracking_uri)}`")
    return "\n".join(lines) + "\n"


def _registration_line(registration: Any) -> str:
    if registration.registered:
        return f"{registration.model_uri} (alias: {registration.alias_uri})"
    return "nothing registered"


def run_summary_markdown(
    params: Params,
    metrics: dict[str, float],
    decision: GateDecision,
    registration: Any,
    training: dict[str, Any] | None = None,
) -> str:
    """Markdown for the Prefect artifact: metrics table, gate decision, model URI."""
    shown = task_type_for(params).metrics
    rows = "\n".join(f"| {name} | {metrics[name]:.4f} |" for name in shown if name in metrics)
    reasons = "\n".join(f"- {reason}" for reason in decision.reasons)
    return (
        f"# Refinery run: {params.register_.model_name}\n\n"
        f"Training: {training_line(training)}\n\n"
        f"## Test metrics ({int(metrics.get('n_test', 0))} examples)\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n\n"
        f"## Gate: **{decision.label}**\n\n{reasons}\n\n"
        f"## Registration\n\n- model: {_registration_line(registration)}\n"
        f"- MLflow run: `{registration.run_id}`\n"
        f"- UI: `{mlflow_ui_command(effective_tracking_uri(params.register_))}`\n"
    )


def run_summary_text(
    params: Params,
    metrics: dict[str, float],
    decision: GateDecision,
    registration: Any,
    tracking_uri: str,
    training: dict[str, Any] | None = None,
) -> str:
    """Plain text for the terminal at the end of `refinery run` / `make run`."""
    lines = ["", "=" * 72, f"Refinery run summary: {params.register_.model_name}", "=" * 72]
    lines.append(f"Training: {training_line(training)}")
    lines.append(f"Test metrics ({int(metrics.get('n_test', 0))} examples):")
    shown = task_type_for(params).metrics
    lines += [f"  {name:<16} {metrics[name]:.4f}" for name in shown if name in metrics]
    if "n_not_a_label" in metrics:  # causal_lm on classification data: answers off the label set
        lines.append(
            f"  {int(metrics['n_not_a_label'])} of {int(metrics['n_generated'])} answers are not a label"
        )
    lines.append(f"Gate: {decision.label.upper()}")
    lines += [f"  - {reason}" for reason in decision.reasons]
    lines.append(f"Registered model: {_registration_line(registration)}")
    lines.append(f"MLflow run: {registration.run_id}")
    lines.append(f"Open the MLflow UI: {mlflow_ui_command(tracking_uri)}")
    if registration.registered and not tracking_uri.startswith("http"):
        lines.append(
            f"  then browse http://127.0.0.1:5000/#/models/{registration.model_name}/versions/{registration.version}"
        )
    return "\n".join(lines)
