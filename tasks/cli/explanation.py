"""`refinery explain NAME@ALIAS | NAME/VERSION`: where a registered version came from, and why it is there.

The chain read back from the registry: code (git), data (DVC hashes), validation, tokenizer,
params, base model, the MLflow and Prefect runs, the gate decision, the promotion tags, and the
gate report logged with the version's run.
"""

from __future__ import annotations

import re

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from tasks.core.errors import RefineryError
from tasks.registry.promotion import RegistryLookupError, aliases_of, registered_model

_REFERENCE = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))$")
CHAIN = (
    ("code", "git_commit"),
    ("uncommitted changes", "git_dirty"),
    ("data (md5 of the files read; DVC's md5 when tracked)", "data_hash"),
    ("train file (md5)", "data_hash_train"),
    ("test file (md5)", "data_hash_test"),
    ("pipeline lock (md5 of dvc.lock)", "dvc_lock_hash"),
    ("validation (Great Expectations)", "validation"),
    ("tokenizer fingerprint", "tokenizer_fingerprint"),
    ("params hash", "params_hash"),
    ("base model", "base_model"),
    ("base model version", "base_model_version"),
    ("base model weights (sha256)", "base_model_hash"),
    ("MLflow run", "mlflow_run_id"),
    ("Prefect flow run", "prefect_flow_run_id"),
    ("Prefect deployment", "prefect_deployment"),
    ("gate", "gate.decision"),
)
PROMOTION = ("promoted_by", "promoted_at", "promotion_reason", "promoted_from", "replaced_by", "demoted_at")


def resolve(client: MlflowClient, reference: str) -> ModelVersion:
    """The version `NAME@ALIAS`, `NAME/VERSION` (optionally prefixed `models:/`) points at."""
    match = _REFERENCE.match(reference.strip())
    if match is None:
        raise RefineryError(
            f"'{reference}': expected NAME@ALIAS or NAME/VERSION, e.g. banking77-intent@champion"
        )
    name, alias, version = match["name"], match["alias"], match["version"]
    model = registered_model(client, name)
    if alias is not None:
        aliases = aliases_of(model)
        if alias not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            raise RegistryLookupError(f"model '{name}' has no alias '{alias}'; aliases: {known}")
        version = aliases[alias]
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryLookupError(f"model '{name}' has no version {version}") from None


def ancestry(client: MlflowClient, version: ModelVersion, limit: int = 20) -> str:
    """`NAME/N <- started from NAME/M <- ... <- base model X`, following `base_model_version` tags."""
    steps, tags, seen = [f"{version.name}/{version.version}"], dict(version.tags), set()
    while (parent := tags.get("base_model_version")) and parent not in seen and len(steps) < limit:
        seen.add(parent)
        steps.append(f"started from {parent}")
        name, _, number = parent.rpartition("/")
        try:
            tags = dict(client.get_model_version(name, number).tags)
        except MlflowException:
            steps.append("(not in this store)")
            return " <- ".join(steps)
    steps.append(f"base model {tags.get('base_model', '-')}")
    return " <- ".join(steps)


def gate_report_text(version: ModelVersion) -> str | None:
    """The markdown gate report logged with the version's run, or None (older versions)."""
    uri = version.tags.get("gate.report") or f"runs:/{version.run_id}/gate_report.md"
    try:
        return str(mlflow.artifacts.load_text(uri))
    except (MlflowException, OSError):
        return None


def explain(client: MlflowClient, reference: str) -> str:
    """The lineage chain of the referenced version and the gate report that put it there."""
    version = resolve(client, reference)
    name, number, tags = version.name, str(version.version), dict(version.tags)
    held = sorted(alias for alias, v in aliases_of(registered_model(client, name)).items() if v == number)
    tags.setdefault("mlflow_run_id", str(version.run_id))
    lines = [f"{name} version {number} (aliases: {', '.join(held) or 'none'})", ""]
    lines += [f"Chain: {ancestry(client, version)}", "", "Lineage:"]
    width = max(len(label) for label, _ in CHAIN)
    lines += [f"  {label:<{width}}  {tags.get(key, '-')}" for label, key in CHAIN]
    lines.append(f"  {'params':<{width}}  runs:/{version.run_id}/params.yaml")
    promoted = [(key, tags[key]) for key in PROMOTION if key in tags]
    if promoted:
        lines += ["", "Promotion:"] + [f"  {key:<{width}}  {value}" for key, value in promoted]
    report = gate_report_text(version)
    lines += ["", "Gate report:", "", report if report else "(no gate report logged with this version)"]
    return "\n".join(lines)
