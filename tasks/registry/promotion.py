"""Registry management: which version serves (`champion`), promotion, rollback and the version list.

Aliases are read from the MLflow registry on every call and never kept anywhere else, so an alias
a person moved by hand in the MLflow UI counts exactly like one moved by `refinery promote`.
Who/when/why of the last promotion or demotion is written as version tags.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

from tasks.core.errors import RefineryError
from tasks.registry.aliases import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    AliasChange,
    alias_lock,
    aliases_of,
    repair_half_done_move,
    set_chain,
)

ANY_CHAMPION = "any"  # promote whichever version is champion now (no compare-and-set)
METRIC_COLUMNS = ("accuracy", "f1_macro")  # the table's default columns: a classifier's test metrics
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST",)
_MAX_TAG_VALUE = 5000  # far below MLflow's limit; a reason is a sentence, not a document


class RegistryLookupError(RefineryError):
    """The registered model or version named by the user does not exist."""


class RollbackError(RefineryError):
    """There is nothing to roll back to."""


class ChampionMoved(RefineryError):
    """A compare-and-set promotion found another champion than the one compared with."""


@dataclass(frozen=True)
class VersionRow:
    """What `refinery models` shows for one registered version."""

    version: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]  # the test metrics the version's run logged, without `test_`
    gate_decision: str | None
    data_hash: str | None
    created: datetime
    task: str | None = None  # the `task` param of the version's run (None: not recorded)


def current_user() -> str:
    """The person running the command: $USER, else the login name, else 'unknown'."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no passwd entry, as in some containers
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def registered_model(client: MlflowClient, name: str) -> RegisteredModel:
    """The registered model `name`, with its aliases as stored now."""
    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            raise RegistryLookupError(
                f"no registered model '{name}' in {client.tracking_uri} (check the name or --tracking-uri)"
            ) from None
        raise


def _require_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as err:
        if err.error_code not in _NOT_FOUND:
            raise
    known = sorted((str(v.version) for v in _all_versions(client, name)), key=int)
    raise RegistryLookupError(
        f"model '{name}' has no version {version}; versions: {', '.join(known) or 'none'}"
    )


def _tag(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value[:_MAX_TAG_VALUE])


def _move(client: MlflowClient, model: RegisteredModel, to: str, reason: str, user: str) -> AliasChange:
    """Point `champion` at `to` and `previous-champion` at the champion until now."""
    name, now, aliases = model.name, _now(), aliases_of(model)
    from_ = aliases.get(CHAMPION)
    set_chain(client, name, to, from_)
    promoted = {"promoted_by": user, "promoted_at": now, "promotion_reason": reason}
    _tag(client, name, to, {**promoted, "promoted_from": from_ or "none"})
    if from_ is not None:
        _tag(client, name, from_, {"demoted_by": user, "demoted_at": now, "replaced_by": to})
    return AliasChange(name, to, from_, changed=True)


def promote(
    client: MlflowClient,
    name: str,
    version: str,
    reason: str | None = None,
    user: str | None = None,
    expected_champion: str | None = ANY_CHAMPION,
) -> AliasChange:
    """Make `version` the champion; the champion until now becomes `previous-champion`.

    With `expected_champion` (a version, or None for "no champion") the move is compare-and-set:
    if the champion is no longer that one, nothing moves and `ChampionMoved` says so.
    """
    registered_model(client, name)
    _require_version(client, name, version)
    with alias_lock(client, name):
        model = repair_half_done_move(client, name)
        aliases = aliases_of(model)
        current = aliases.get(CHAMPION)
        if current == version:
            return AliasChange(name, version, aliases.get(PREVIOUS_CHAMPION), changed=False)
        if expected_champion != ANY_CHAMPION and current != expected_champion:
            raise ChampionMoved(
                f"model '{name}': '{CHAMPION}' is version {current or 'none'}, not the version "
                f"{expected_champion or 'none'} that version {version} was compared with; "
                f"version {version} stays as it is"
            )
        return _move(client, model, version, reason or "(none given)", user or current_user())


def rollback(
    client: MlflowClient, name: str, reason: str | None = None, user: str | None = None
) -> AliasChange:
    """Swap `champion` and `previous-champion`, so a second rollback undoes the first."""
    registered_model(client, name)
    with alias_lock(client, name):
        model = repair_half_done_move(client, name)
        aliases = aliases_of(model)
        previous, current = aliases.get(PREVIOUS_CHAMPION), aliases.get(CHAMPION)
        if previous is None:
            raise RollbackError(
                f"model '{name}' has no '{PREVIOUS_CHAMPION}' alias: nothing to roll back to "
                f"(champion: {f'version {current}' if current else 'none'})"
            )
        if previous == current:
            return AliasChange(name, previous, previous, changed=False)
        default_reason = f"rollback from version {current}" if current else "rollback"
        return _move(client, model, previous, reason or default_reason, user or current_user())


def _all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    found: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name = '{quoted}'", page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _run_record(client: MlflowClient, run_id: str | None) -> tuple[dict[str, float], str | None]:
    """The test metrics (without `test_`) and the `task` param the version's run logged."""
    if not run_id:
        return {}, None
    try:
        data = client.get_run(run_id).data
    except MlflowException:  # the run was deleted or lives in another store
        return {}, None
    metrics = {key.removeprefix("test_"): v for key, v in data.metrics.items() if key.startswith("test_")}
    return metrics, data.params.get("task")


def list_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    """Every version of `name`, newest first, with aliases read from the registry now."""
    aliases = aliases_of(registered_model(client, name))  # search results may lack aliases
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        by_version.setdefault(version, []).append(alias)
    versions = sorted(_all_versions(client, name), key=lambda v: int(v.version), reverse=True)
    return [
        VersionRow(
            version=str(v.version),
            aliases=tuple(by_version.get(str(v.version), [])),
            metrics=(record := _run_record(client, v.run_id))[0],
            gate_decision=v.tags.get("gate.decision"),
            data_hash=v.tags.get("data_hash"),
            created=datetime.fromtimestamp(v.creation_timestamp / 1000, tz=UTC),
            task=record[1],
        )
        for v in versions
    ]


def short_hash(value: str | None, digits: int = 10) -> str:
    """`files-md5:0123…` -> `files-md5:0123456789`; each part of a `+`-joined DVC hash shortened."""
    if not value:
        return "-"
    parts = []
    for part in value.split("+"):
        prefix, sep, digest = part.rpartition(":")
        parts.append(f"{prefix}{sep}{digest[:digits]}")
    return "+".join(parts)


def versions_table(rows: list[VersionRow], columns: tuple[str, ...] = METRIC_COLUMNS) -> str:
    """An aligned text table of `rows`, one line per version, with the test metrics `columns`."""
    header = ("version", "aliases", *columns, "gate", "data", "created (UTC)")
    lines = [header] + [
        (
            row.version,
            ", ".join(row.aliases) or "-",
            *(f"{row.metrics[key]:.4f}" if key in row.metrics else "-" for key in columns),
            row.gate_decision or "-",
            short_hash(row.data_hash),
            row.created.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def champion_version(client: MlflowClient, name: str) -> tuple[str, dict[str, str]] | None:
    """The version `champion` points at and its tags, or None (no model, or no such alias)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases_of(model).get(CHAMPION)
    if version is None:
        return None
    tags = dict(client.get_model_version(name, version).tags)
    run_id = client.get_model_version(name, version).run_id
    return version, {**tags, "mlflow_run_id": tags.get("mlflow_run_id") or str(run_id)}
