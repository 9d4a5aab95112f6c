"""One pipeline run, one MLflow run, at most one version: what a retried register step finds again.

The MLflow run carries a key made of the run directory, the effective params, the data hash, the
trained weights and the evaluation and gate files. A retry (Prefect's, the step's own, or
`dvc repro` / the same command run again) finds that run, the model it logged and the version
made from it, and completes what is missing instead of creating them twice.
"""

from __future__ import annotations

import hashlib
import json

from mlflow import MlflowClient
from mlflow.entities import Run

from tasks.core.config import Params
from tasks.core.hashing import fingerprint_files
from tasks.core.layout import RunLayout
from tasks.lineage.record import Lineage
from tasks.models.base_models import weights_fingerprint
from tasks.models.registered import WEIGHTS_TAG  # noqa: F401  (on each version: weights and packaging)

KEY_TAG = "refinery.registration_key"
COMPLETE_TAG = "refinery.registration"  # "complete" once the release (report, promotion) is done
COMPLETE = "complete"
_RETRY_SETTINGS = ("retry_attempts", "retry_wait_seconds")  # how hard to try changes no outcome


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def registration_key(params: Params, layout: RunLayout, lineage: Lineage) -> str:
    """What makes two register attempts the same pipeline run: directory, params, data, weights,
    and the evaluation and gate decision made on them."""
    settings = params.as_dict()
    for name in _RETRY_SETTINGS:
        settings["register"].pop(name, None)
    weights = weights_fingerprint(layout.model_dir) if layout.model_dir.is_dir() else "no model"
    decided = fingerprint_files(layout.root, ["eval/metrics.json", "gate.json"])
    parts = [str(layout.root.resolve()), settings, lineage.data_hash, weights, decided]
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def find_run(client: MlflowClient, experiment_id: str, key: str) -> Run | None:
    """The MLflow run an earlier attempt of this pipeline run created, if any (the oldest)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{KEY_TAG}` = '{_quoted(key)}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0] if runs else None


def is_complete(run: Run | None) -> bool:
    """True when an earlier attempt finished everything, release included."""
    return run is not None and run.data.tags.get(COMPLETE_TAG) == COMPLETE


def logged_model_of(client: MlflowClient, experiment_id: str, run_id: str) -> tuple[str, str] | None:
    """(model URI, model id) of a model the run logged completely, if any."""
    found = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{_quoted(run_id)}'", max_results=50
    )
    ready = [model for model in found if str(model.status).upper().endswith("READY")]
    return (ready[0].model_uri, ready[0].model_id) if ready else None


def version_of_run(client: MlflowClient, model_name: str, run_id: str) -> str | None:
    """The version of `model_name` an earlier attempt registered from this run, if any."""
    found = client.search_model_versions(f"name = '{_quoted(model_name)}' and run_id = '{_quoted(run_id)}'")
    versions = sorted((str(v.version) for v in found), key=int)
    return versions[0] if versions else None
