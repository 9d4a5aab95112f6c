"""From the laptop to the team: copy what `make run` left in a local MLflow store to a team server.

    python -m infra.migrate --from sqlite:///mlflow.db --to http://127.0.0.1:5000
    make publish-to-team                       # the same, TO defaults to MLFLOW_TRACKING_URI

What travels, through MLflow's client API on both sides (so the team server's own database and
artifact store stay its business): every registered model (or those named with --model) with its
description and tags; each version with its tags, description and model artifacts (the logged model
it was registered from); the runs those versions came from, with params, full metric histories,
tags and artifacts (--all-runs: every run of those runs' experiments too); then the aliases.

Idempotent: each copy carries the id of its original in a tag, and a second call finds the copy
and skips it. A run is marked complete only after its last artifact; a run copy an interrupted call
left incomplete is deleted and copied again. An alias the team model already has is left alone
(the team's champion is the team's decision) and reported.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from tasks.core.errors import RefineryError

SOURCE_RUN = "refinery.migrated_from_run"
SOURCE_VERSION = "refinery.migrated_from_version"
COMPLETE = "refinery.migration_complete"
BATCH = 100  # log_batch takes at most 100 params (and 1000 metrics) per call


class MigrationError(RefineryError):
    """The source or the target store cannot be read or written."""


@dataclass
class Report:
    """What one call copied, found copied already, or left alone."""

    runs_copied: int = 0
    runs_present: int = 0
    versions: dict[str, str] = field(default_factory=dict)  # "name/source version" -> target version
    versions_present: int = 0
    aliases_set: list[str] = field(default_factory=list)
    aliases_kept: list[str] = field(default_factory=list)  # the target had its own

    def summary(self) -> str:
        return (
            f"runs: {self.runs_copied} copied, {self.runs_present} already there; "
            f"versions: {len(self.versions) - self.versions_present} copied, {self.versions_present} already "
            f"there; aliases set: {', '.join(self.aliases_set) or 'none'}"
            + (f"; kept the team's: {', '.join(self.aliases_kept)}" if self.aliases_kept else "")
        )


@dataclass
class Migration:
    """One copy from `source` to `target`; maps source run ids to target run ids as it goes."""

    source: MlflowClient
    target: MlflowClient
    source_uri: str
    report: Report = field(default_factory=Report)
    runs: dict[str, str] = field(default_factory=dict)

    def experiment(self, source_experiment_id: str) -> str:
        """The target experiment of the same name, created when missing."""
        experiment = self.source.get_experiment(source_experiment_id)
        found = self.target.get_experiment_by_name(experiment.name)
        if found is not None:
            return str(found.experiment_id)
        return str(self.target.create_experiment(experiment.name, tags=dict(experiment.tags)))

    def run(self, run_id: str) -> str:
        """The target copy of run `run_id`: found complete, or copied now."""
        if run_id in self.runs:
            return self.runs[run_id]
        run = self.source.get_run(run_id)
        experiment_id = self.experiment(run.info.experiment_id)
        existing = self.target.search_runs([experiment_id], filter_string=f"tags.`{SOURCE_RUN}` = '{run_id}'")
        complete = [r for r in existing if r.data.tags.get(COMPLETE) == "true"]
        for stale in (r for r in existing if r.data.tags.get(COMPLETE) != "true"):
            self.target.delete_run(stale.info.run_id)  # left half-copied by an interrupted call
        if complete:
            self.report.runs_present += 1
            copy_id = complete[0].info.run_id
        else:
            copy_id = self._copy_run(run, experiment_id)
            self.report.runs_copied += 1
        self.runs[run_id] = copy_id
        return copy_id

    def _copy_run(self, run: Run, experiment_id: str) -> str:
        tags = {**run.data.tags, SOURCE_RUN: run.info.run_id}
        copy = self.target.create_run(
            experiment_id, start_time=run.info.start_time, tags=tags, run_name=run.info.run_name
        )
        copy_id = copy.info.run_id
        params = [Param(key, value) for key, value in run.data.params.items()]
        metrics = [
            m for key in run.data.metrics for m in self.source.get_metric_history(run.info.run_id, key)
        ]
        for start in range(0, max(len(params), len(metrics)), BATCH):
            self.target.log_batch(
                copy_id, metrics=_plain(metrics[start : start + BATCH]), params=params[start : start + BATCH]
            )
        with tempfile.TemporaryDirectory() as scratch:
            local = self.source.download_artifacts(run.info.run_id, "", scratch)
            if any(Path(local).iterdir()):
                self.target.log_artifacts(copy_id, local)
        self.target.log_batch(copy_id, tags=[RunTag(COMPLETE, "true")])
        self.target.set_terminated(copy_id, status=run.info.status, end_time=run.info.end_time)
        return copy_id


def _plain(metrics: list[Metric]) -> list[Metric]:
    """Metrics as log_batch takes them (history entries carry a model id and dataset fields too)."""
    return [Metric(m.key, m.value, m.timestamp, m.step) for m in metrics]


def download_model(client: MlflowClient, name: str, version: str, into: Path) -> Path:
    """The files of a model version, downloaded through `client`'s own store and server.

    (A `models:/` URI would be resolved against the default registry, not `client`'s.)
    """
    uri = client.get_model_version_download_uri(name, version)
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(into), tracking_uri=client.tracking_uri
        )
    )


def _logged_model_id(source: str | None) -> str | None:
    """The logged model a version's source names (`models:/m-…`); stores do not always fill model_id."""
    match = re.fullmatch(r"models:/(m-[0-9a-f]+)", source or "")
    return match.group(1) if match else None


def _model_source(
    migration: Migration, version: ModelVersion, run_id: str, scratch: str
) -> tuple[str, str | None]:
    """Upload the version's model files to the target; the new version's source and model id."""
    local = str(download_model(migration.source, version.name, str(version.version), Path(scratch)))
    target = migration.target
    model_id = version.model_id or _logged_model_id(version.source)
    if model_id:
        logged = migration.source.get_logged_model(model_id)
        experiment_id = target.get_run(run_id).info.experiment_id
        copy = target.create_logged_model(
            experiment_id, name=logged.name, source_run_id=run_id, tags=dict(logged.tags),
            params=dict(logged.params), model_type=logged.model_type,
        )  # fmt: skip
        target.log_model_artifacts(copy.model_id, local)
        target.finalize_logged_model(copy.model_id, "READY")
        return f"models:/{copy.model_id}", copy.model_id
    path = f"registered-model-v{version.version}"  # a version registered from a run's files
    target.log_artifacts(run_id, local, artifact_path=path)
    return f"{target.get_run(run_id).info.artifact_uri}/{path}", None


def _copy_version(migration: Migration, version: ModelVersion, present: dict[str, ModelVersion]) -> str:
    """The target version copied from `version`: found by its tag, or created now."""
    key = f"{version.run_id}/{version.name}/{version.version}"
    if key in present:
        migration.report.versions_present += 1
        return str(present[key].version)
    if not version.run_id:
        raise MigrationError(f"{version.name} version {version.version} has no run to copy it with")
    run_id = migration.run(version.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        source, model_id = _model_source(migration, version, run_id, scratch)
    created = migration.target.create_model_version(
        version.name, source=source, run_id=run_id, description=version.description,
        tags={**version.tags, SOURCE_VERSION: key}, model_id=model_id,
    )  # fmt: skip
    registered = f"{version.name}/{version.version}"
    if migration.source.get_run(version.run_id).data.tags.get("registered_version") == registered:
        migration.target.set_tag(run_id, "registered_version", f"{version.name}/{created.version}")
    return str(created.version)


def _copy_model(migration: Migration, name: str) -> None:
    """A registered model with its versions (oldest first, as they were made), then its aliases."""
    source, target = migration.source, migration.target
    model = source.get_registered_model(name)
    try:
        target.create_registered_model(name, tags=dict(model.tags), description=model.description)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    present = {
        v.tags[SOURCE_VERSION]: v
        for v in target.search_model_versions(f"name='{name}'")
        if SOURCE_VERSION in v.tags
    }
    numbers: dict[str, str] = {}
    for version in sorted(source.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        numbers[str(version.version)] = _copy_version(migration, version, present)
        migration.report.versions[f"{name}/{version.version}"] = numbers[str(version.version)]
    team_aliases = dict(target.get_registered_model(name).aliases)
    for alias, number in model.aliases.items():
        wanted = numbers[str(number)]
        if alias not in team_aliases:
            target.set_registered_model_alias(name, alias, wanted)
            migration.report.aliases_set.append(f"{name}@{alias}={wanted}")
        elif str(team_aliases[alias]) == wanted:
            migration.report.aliases_set.append(f"{name}@{alias}={wanted}")
        else:
            migration.report.aliases_kept.append(f"{name}@{alias}={team_aliases[alias]}")


def migrate(source_uri: str, target_uri: str, models: list[str], all_runs: bool = False) -> Report:
    """Copy the registered models `models` (all when empty) and their runs; see the module doc."""
    migration = Migration(
        MlflowClient(source_uri, source_uri), MlflowClient(target_uri, target_uri), source_uri
    )
    names = models or [m.name for m in migration.source.search_registered_models()]
    for name in names:
        _copy_model(migration, name)
    if all_runs:
        experiments = {migration.source.get_run(run_id).info.experiment_id for run_id in list(migration.runs)}
        for run in migration.source.search_runs(sorted(experiments)):
            migration.run(run.info.run_id)
    return migration.report


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.migrate --from SOURCE --to TARGET [--model NAME]... [--all-runs]`."""
    parser = argparse.ArgumentParser(prog="python -m infra.migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", default="sqlite:///mlflow.db", help="the local store")
    parser.add_argument("--to", dest="target", required=True, help="the team's MLflow server")
    parser.add_argument("--model", action="append", default=[], help="a registered model (repeatable)")
    parser.add_argument("--all-runs", action="store_true", help="every run of the models' experiments")
    args = parser.parse_args(argv)
    path = args.source.removeprefix("sqlite:///")
    if args.source.startswith("sqlite:///") and not Path(path).is_file():
        print(f"error: no MLflow store at {path} (make run creates it)", file=sys.stderr)
        return 1
    try:
        report = migrate(args.source, args.target, args.model, args.all_runs)
    except (RefineryError, MlflowException) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{args.source} -> {args.target}: {report.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
