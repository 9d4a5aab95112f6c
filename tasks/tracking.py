"""Recording one pipeline run in MLflow: lineage, params, metrics, artifacts and datasets.

Everything here writes to the run given by `run_id`; choosing the tracking store, registering
and the model card live in `tasks.registry`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from tasks.config import Params, RegisterConfig
from tasks.data import SPLITS
from tasks.errors import RefineryError
from tasks.gating import GateDecision
from tasks.layout import RunLayout

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MAX_PARAM_VALUE = 6000  # MLflow refuses longer param values
MAX_TAG_VALUE = 8000  # and longer tag values
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Lineage:
    """What a registered version must say about where it came from."""

    git_commit: str
    git_dirty: bool
    data_hash: str
    prefect_flow_run_id: str | None
    params_hash: str
    dvc_lock_hash: str | None = None  # md5 of dvc.lock, when the checkout has one
    validation: str | None = None  # the Great Expectations result in one line
    tokenizer_fingerprint: str | None = None
    base_model: str | None = None  # train.base_model as given: a path or a hub id
    base_model_hash: str | None = None  # sha256 of its config and weights files
    prefect_deployment: str | None = None

    def tags(self) -> dict[str, str]:
        """The lineage as MLflow tag values (strings only)."""
        return {
            "git_commit": self.git_commit,
            "git_dirty": str(self.git_dirty).lower(),
            "data_hash": self.data_hash,
            "prefect_flow_run_id": self.prefect_flow_run_id or "none",
            "params_hash": self.params_hash,
            "dvc_lock_hash": self.dvc_lock_hash or "none",
            "validation": self.validation or "none",
            "tokenizer_fingerprint": self.tokenizer_fingerprint or "none",
            "base_model": self.base_model or "none",
            "base_model_hash": self.base_model_hash or "none",
            "prefect_deployment": self.prefect_deployment or "none",
        }


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def dvc_data_hash(dvc_file: Path) -> str | None:
    """The md5 DVC recorded for the outputs of `dvc_file`, or None when there is no such file."""
    if not dvc_file.is_file():
        return None
    try:
        raw = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise RefineryError(f"{dvc_file}: not valid YAML") from None
    hashes = [str(out["md5"]) for out in raw.get("outs", []) if isinstance(out, dict) and out.get("md5")]
    if not hashes:
        raise RefineryError(f"{dvc_file}: no 'outs[].md5'; run `dvc add` or `dvc commit` again")
    return "+".join(hashes)


def files_hash(paths: list[Path]) -> str | None:
    """An md5 over the bytes of the files that exist among `paths`, in the given order."""
    digest = hashlib.md5(usedforsecurity=False)
    found = False
    for path in paths:
        if path.is_file():
            found = True
            digest.update(path.name.encode() + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return f"files-md5:{digest.hexdigest()}" if found else None


def params_hash(params: Params) -> str:
    """A short, stable hash of the effective configuration."""
    text = json.dumps(params.as_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_lineage(
    params: Params,
    flow_run_id: str | None = None,
    repo_dir: Path = Path(),
    layout: RunLayout | None = None,
    deployment: str | None = None,
) -> Lineage:
    """Git state, data hash (DVC's when `data.dvc` exists), params hash of this checkout, and with
    `layout` the run's validation summary, tokenizer fingerprint and base model identity."""
    commit = _git(repo_dir, "rev-parse", "HEAD")
    status = _git(repo_dir, "status", "--porcelain") if commit else None
    data = params.data
    data_files = [Path(p) for p in (data.train_path, data.test_path, data.labels_path) if p]
    data_hash = dvc_data_hash(repo_dir / "data.dvc") or files_hash(
        [p if p.is_absolute() else repo_dir / p for p in data_files]
    )
    lock = repo_dir / "dvc.lock"
    return Lineage(
        git_commit=commit or UNKNOWN,
        git_dirty=bool(status),
        data_hash=data_hash or UNKNOWN,
        prefect_flow_run_id=flow_run_id,
        params_hash=params_hash(params),
        dvc_lock_hash=hashlib.md5(lock.read_bytes(), usedforsecurity=False).hexdigest()
        if lock.is_file()
        else None,
        **(run_lineage(params, layout) if layout is not None else {}),
        prefect_deployment=deployment,
    )


def run_lineage(params: Params, layout: RunLayout) -> dict[str, str | None]:
    """What the run directory says: validation result, tokenizer fingerprint; and the base model."""
    from tasks.base_models import fingerprint_files, resolve_base_model
    from tasks.errors import ModelSourceError
    from tasks.tokenization import META_FILE

    facts: dict[str, str | None] = {"base_model": params.train.base_model}
    if layout.validation_json.is_file():
        result = read_json(layout.validation_json)
        stats = ", ".join(f"{k}={v}" for k, v in sorted(result.get("statistics", {}).items()))
        facts["validation"] = f"{'passed' if result.get('success') else 'failed'}: {stats}"
    meta = layout.tokenized_dir / META_FILE
    if meta.is_file():
        facts["tokenizer_fingerprint"] = str(read_json(meta).get("tokenizer_fingerprint"))
    try:
        base_dir = resolve_base_model(params.train.base_model)
    except ModelSourceError:
        return facts
    weights = ("config.json", "model.safetensors", "pytorch_model.bin")
    facts["base_model_hash"] = fingerprint_files(base_dir, weights)
    return facts


def effective_tracking_uri(cfg: RegisterConfig) -> str:
    """`MLFLOW_TRACKING_URI` when set (team mode: a server), else `register.tracking_uri`."""
    return os.environ.get(TRACKING_URI_ENV) or cfg.tracking_uri


@contextmanager
def tracking_to(uri: str) -> Iterator[MlflowClient]:
    """Point MLflow at `uri` for the block, then restore the previous URI and environment."""
    saved_env = os.environ.get(TRACKING_URI_ENV)
    try:
        # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would then outlive the block
        with _use_tracking_uri(uri):
            yield MlflowClient(tracking_uri=uri)
    finally:
        if saved_env is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = saved_env


def flatten_params(params: Params) -> dict[str, str]:
    """`params.as_dict()` as dotted keys (`train.learning_rate`) with MLflow-sized string values."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            text = json.dumps(node) if isinstance(node, list | dict) else str(node)
            flat[prefix] = text[:MAX_PARAM_VALUE]

    walk("", params.as_dict())
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def history_metrics(history: pd.DataFrame, timestamp: int) -> list[Metric]:
    """One metric point per non-empty cell of the training history, at its `step`."""
    points: list[Metric] = []
    columns = [c for c in history.columns if c != "step"]
    for row in history.to_dict("records"):
        step = int(row["step"])
        for column in columns:
            value = _number(row[column])
            if value is not None:
                points.append(Metric(str(column), value, timestamp, step))
    return points


def summary_metrics(values: dict[str, Any], prefix: str, timestamp: int) -> list[Metric]:
    """The numeric entries of a flat JSON of metrics, keys prefixed, at step 0."""
    return [
        Metric(f"{prefix}{key}", number, timestamp, 0)
        for key, value in sorted(values.items())
        if (number := _number(value)) is not None
    ]


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def log_record(
    client: MlflowClient,
    run_id: str,
    params: Params,
    layout: RunLayout,
    decision: GateDecision,
    lineage: Lineage,
) -> None:
    """Params, metrics (history per step, `test_*`, `train.*`) and gate/lineage tags of the run."""
    now = int(time.time() * 1000)
    metrics = history_metrics(pd.read_csv(layout.train_history), now)
    metrics += summary_metrics(read_json(layout.eval_metrics), "test_", now)
    metrics += summary_metrics(read_json(layout.train_metrics), "train.", now)
    tags = {
        **lineage.tags(),
        "mlflow.source.git.commit": lineage.git_commit,
        "gate.decision": decision.label,
        "gate.reasons": "; ".join(decision.reasons)[:MAX_TAG_VALUE],
        "refinery.run_dir": str(layout.root),
    }
    client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(key, value) for key, value in flatten_params(params).items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )


def log_artifacts(client: MlflowClient, run_id: str, layout: RunLayout, files: list[Path]) -> None:
    """Each file under the same folder in the run's artifacts as in the run directory."""
    for path in files:
        folder = path.parent.relative_to(layout.root).as_posix()
        client.log_artifact(run_id, str(path), artifact_path=None if folder == "." else folder)


def log_datasets(params: Params, layout: RunLayout, lineage: Lineage) -> dict[str, int]:
    """Log each split as an input of the active run (source: the data file); return split sizes."""
    data = params.data
    sizes: dict[str, int] = {}
    for split in SPLITS:
        frame = pd.read_parquet(layout.splits_dir / f"{split}.parquet")
        sizes[split] = len(frame)
        source = data.test_path if split == "test" and data.test_path else data.train_path
        tags = {"data_hash": lineage.data_hash, "dataset": data.name}
        with warnings.catch_warnings():  # MLflow's notes on source resolution and int columns are noise here
            warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
            dataset = from_pandas(frame, source=source, name=data.name, targets="label")
            mlflow.log_input(dataset, context=split, tags=tags)
    return sizes
