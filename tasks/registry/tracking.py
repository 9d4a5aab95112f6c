"""The MLflow tracking store of a run, and recording one pipeline run in it.

Which store: `MLFLOW_TRACKING_URI` when set (team mode: a server), else `register.tracking_uri`
(tasks.core.tracking_store, re-exported here). Everything else here writes to the run given by
`run_id`: params, metrics, tags, artifacts and datasets. Registering and the model card live in
`tasks.registry.registration`.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Metric, Param, RunTag

from tasks.core.config import Params
from tasks.core.files import read_json
from tasks.core.layout import RunLayout
from tasks.core.tracking_store import (  # noqa: F401  (re-exported: where the registry's callers look)
    TRACKING_URI_ENV,
    effective_tracking_uri,
    redacted,
    require_store,
    sqlite_store_file,
    store_exists,
    tracking_to,
)
from tasks.data.splitting import SPLITS
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage

MAX_PARAM_VALUE = 6000  # MLflow refuses longer param values
MAX_TAG_VALUE = 8000  # and longer tag values
RECORDED_TAG = "refinery.recorded"  # set with the params and metrics: a retry does not log them twice


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
    training = read_json(layout.train_metrics)
    metrics += summary_metrics(training, "train.", now)
    # 1 when a finished training with the same key was reused instead of trained (train.reuse_trained)
    metrics.append(Metric("train.reused", 1.0 if training.get("reused") else 0.0, now, 0))
    tags = {
        **lineage.tags(),
        "mlflow.source.git.commit": lineage.git_commit,
        "gate.decision": decision.label,
        "gate.reasons": "; ".join(decision.reasons)[:MAX_TAG_VALUE],
        "refinery.run_dir": str(layout.root),
        RECORDED_TAG: "true",
    }
    # how the weights were trained, as top-level params to filter and compare runs by
    distribution = {
        "world_size": str(lineage.world_size),
        "launcher": lineage.launcher,
        "strategy": lineage.strategy,
    }
    client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(key, value) for key, value in {**flatten_params(params), **distribution}.items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )


def log_artifacts(client: MlflowClient, run_id: str, layout: RunLayout, files: list[Path]) -> None:
    """Each file under the same folder in the run's artifacts as in the run directory."""
    for path in files:
        folder = path.parent.relative_to(layout.root).as_posix()
        client.log_artifact(run_id, str(path), artifact_path=None if folder == "." else folder)


def fetch_artifact(client: MlflowClient, run_id: str, layout: RunLayout, path: Path) -> None:
    """Copy back into the run directory a file the run logged (`log_artifacts`), e.g. the model card of
    a version a re-run finds already registered: a declared output the re-run would otherwise lack."""
    name = path.relative_to(layout.root).as_posix()
    with tempfile.TemporaryDirectory(prefix="refinery-artifact-") as tmp:
        shutil.copyfile(client.download_artifacts(run_id, name, tmp), path)


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
