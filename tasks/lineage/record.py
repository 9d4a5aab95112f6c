"""What a registered version must say about where it came from, gathered from the checkout and run.

Git state, the content hash of the data files read (tasks.lineage.data), the params hash, and from the run
directory the validation summary, the tokenizer fingerprint and the base model's identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tasks.core.config import Params
from tasks.core.errors import ModelSourceError
from tasks.core.files import read_json
from tasks.core.layout import RunLayout
from tasks.lineage.data import data_hashes
from tasks.lineage.git import git_output
from tasks.models.base_models import base_model_dir, registered_base, weights_fingerprint
from tasks.tokenization.cache import META_FILE

UNKNOWN = "unknown"
# the lineage tags, in the order reports show them
LINEAGE_ROWS = (
    "git_commit",
    "git_dirty",
    "data_hash",
    "data_hash_train",
    "data_hash_test",
    "dvc_lock_hash",
    "params_hash",
    "validation",
    "tokenizer_fingerprint",
    "base_model",
    "base_model_version",
    "base_model_hash",
    "world_size",
    "launcher",
    "strategy",
    "mlflow_run_id",
    "prefect_flow_run_id",
    "prefect_deployment",
    "sweep_run_id",
)


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
    base_model: str | None = None  # train.base_model as given: a path, a hub id or models:/NAME@ALIAS
    base_model_version: str | None = None  # NAME/VERSION that a models:/ base model resolved to
    base_model_hash: str | None = None  # sha256 of its config and weights files
    prefect_deployment: str | None = None
    data_hash_train: str | None = None  # md5 of the train file's bytes (DVC's md5 when it is tracked)
    data_hash_test: str | None = None  # of the separate test file; none when test was split from train
    tokenized_key: str | None = None  # the tokenization cache entry it trained on (kept by `refinery gc`)
    checkpoint_key: str | None = None  # its folder under train.checkpoint_dir (kept by `refinery gc`)
    sweep_run_id: str | None = None  # the MLflow parent run of the sweep that chose these params
    world_size: int = 1  # how many ranks trained (train.distributed.processes x nodes)
    launcher: str = "none"  # train.distributed.launcher: none, torchrun or ray
    strategy: str = "ddp"  # train.distributed.strategy: ddp, fsdp or deepspeed

    def tags(self) -> dict[str, str]:
        """The lineage as MLflow tag values (strings only)."""
        return {
            "git_commit": self.git_commit,
            "git_dirty": str(self.git_dirty).lower(),
            "data_hash": self.data_hash,
            "data_hash_train": self.data_hash_train or "none",
            "data_hash_test": self.data_hash_test or "none",
            "prefect_flow_run_id": self.prefect_flow_run_id or "none",
            "params_hash": self.params_hash,
            "dvc_lock_hash": self.dvc_lock_hash or "none",
            "validation": self.validation or "none",
            "tokenizer_fingerprint": self.tokenizer_fingerprint or "none",
            "base_model": self.base_model or "none",
            **({"base_model_version": self.base_model_version} if self.base_model_version else {}),
            "base_model_hash": self.base_model_hash or "none",
            "prefect_deployment": self.prefect_deployment or "none",
            "tokenized_key": self.tokenized_key or "none",
            "checkpoint_key": self.checkpoint_key or "none",
            **({"sweep_run_id": self.sweep_run_id} if self.sweep_run_id else {}),
            "world_size": str(self.world_size),
            "launcher": self.launcher,
            "strategy": self.strategy,
        }


def params_hash(params: Params) -> str:
    """A short, stable hash of the effective configuration (the cache budget changes no model)."""
    settings = {key: value for key, value in params.as_dict().items() if key != "cache"}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_lineage(
    params: Params,
    flow_run_id: str | None = None,
    repo_dir: Path = Path(),
    layout: RunLayout | None = None,
    deployment: str | None = None,
) -> Lineage:
    """Git state, the content hash of the data files read, params hash of this checkout, and with
    `layout` the run's validation summary, tokenizer fingerprint and base model identity."""
    commit = git_output(repo_dir, "rev-parse", "HEAD")
    status = git_output(repo_dir, "status", "--porcelain") if commit else None
    hashes = data_hashes(params.data, repo_dir)
    lock = repo_dir / "dvc.lock"
    return Lineage(
        git_commit=commit or UNKNOWN,
        git_dirty=bool(status),
        data_hash=hashes.combined,
        data_hash_train=hashes.train,
        data_hash_test=hashes.test,
        prefect_flow_run_id=flow_run_id,
        params_hash=params_hash(params),
        dvc_lock_hash=hashlib.md5(lock.read_bytes(), usedforsecurity=False).hexdigest()
        if lock.is_file()
        else None,
        **(run_lineage(params, layout) if layout is not None else {}),
        prefect_deployment=deployment,
        world_size=params.train.distributed.world_size,
        launcher=params.train.distributed.launcher,
        strategy=params.train.distributed.strategy,
    )


def run_lineage(params: Params, layout: RunLayout) -> dict[str, str | None]:
    """What the run directory says: validation result, tokenizer fingerprint; and the base model."""
    facts: dict[str, str | None] = {"base_model": params.train.base_model}
    if layout.validation_json.is_file():
        result = read_json(layout.validation_json)
        stats = ", ".join(f"{k}={v}" for k, v in sorted(result.get("statistics", {}).items()))
        facts["validation"] = f"{'passed' if result.get('success') else 'failed'}: {stats}"
    if layout.sweep_json.is_file():
        facts["sweep_run_id"] = str(read_json(layout.sweep_json).get("parent_run_id"))
    meta = layout.tokenized_dir / META_FILE
    if meta.is_file():
        tokenized = read_json(meta)
        facts["tokenizer_fingerprint"] = str(tokenized.get("tokenizer_fingerprint"))
        facts["tokenized_key"] = tokenized.get("cache_key")
    if layout.train_metrics.is_file():
        facts["checkpoint_key"] = read_json(layout.train_metrics).get("checkpoint_key")
    try:
        registered = registered_base(params, layout)
        base_dir = base_model_dir(params, layout)
    except ModelSourceError:
        return facts
    if registered is not None:
        facts["base_model_version"] = registered.label
    facts["base_model_hash"] = weights_fingerprint(base_dir)
    return facts
