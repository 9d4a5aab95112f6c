"""`train.base_model: models:/NAME@ALIAS | models:/NAME/VERSION`: continued fine-tuning from a
registered version.

The URI is resolved to one concrete version at the start of a run and pinned in the run directory
(an alias that moves mid-run changes nothing), and the version's model files are downloaded once into
the model cache under its weights hash (`model_weights_hash` on the version), written into a staging
directory and renamed into place when complete, as the GGUF conversion does (tasks.models.gguf).
A causal LM registered as an adapter is merged into its base on the way in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from tasks.core.errors import ModelSourceError
from tasks.core.tracking_store import redacted, store_exists, tracking_to
from tasks.models.gguf import STAGING_INFIX, _readable_as_umask_allows, default_cache_root

PREFIX = "models:/"
WEIGHTS_TAG = "model_weights_hash"  # on each registered version: its weights and packaging params
MARKER = "registered.json"  # written last: a cache directory without it is not a model
_URI = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))$")
# task types whose weights another can start from: an SFT causal LM is where preference tuning starts
_FAMILY = {"preference": "causal_lm"}
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # an unknown alias is the latter


@dataclass(frozen=True)
class RegisteredBase:
    """The concrete version a `models:/` base model resolved to."""

    uri: str  # train.base_model as written
    name: str
    version: str
    weights_hash: str
    task: str  # the `task:` the version was trained with
    run_id: str

    @property
    def label(self) -> str:
        """`NAME/VERSION`: the `base_model_version` lineage tag."""
        return f"{self.name}/{self.version}"


def is_registered(spec: str) -> bool:
    """Whether `spec` names a registered model rather than a path, hub id or packaged name."""
    return spec.startswith(PREFIX)


def _error(spec: str, what: str) -> ModelSourceError:
    return ModelSourceError(f"train.base_model: '{spec}' {what}")


def resolve_version(spec: str, store: str, task: str) -> RegisteredBase:
    """The version `spec` names in `store` now, or a one-line error naming `train.base_model`."""
    from mlflow.exceptions import MlflowException

    match = _URI.match(spec)
    if match is None:
        raise _error(spec, "is not models:/NAME@ALIAS or models:/NAME/VERSION")
    name, alias = match["name"], match["alias"]
    if not store_exists(store):
        raise _error(spec, f"cannot be resolved: tracking store {redacted(store)} does not exist")
    try:
        with tracking_to(store) as client:
            try:
                client.get_registered_model(name)
            except MlflowException as err:
                if err.error_code not in _NOT_FOUND:
                    raise
                raise _error(spec, f"names no registered model '{name}' in {redacted(store)}") from None
            try:
                found = (
                    client.get_model_version_by_alias(name, alias)
                    if alias
                    else client.get_model_version(name, match["version"])
                )
            except MlflowException as err:
                if err.error_code not in _NOT_FOUND:
                    raise
                which = f"alias '{alias}'" if alias else f"version {match['version']}"
                raise _error(spec, f"names no {which} of model '{name}'") from None
            run_task = client.get_run(str(found.run_id)).data.params.get("task", "")
    except ModelSourceError:
        raise
    except Exception as err:  # a server that does not answer, a refused connection
        unreachable = f"cannot be resolved: {redacted(store)} unreachable ({type(err).__name__})"
        raise _error(spec, unreachable) from None
    if _FAMILY.get(run_task, run_task) != _FAMILY.get(task, task):
        raise _error(
            spec, f"is a '{run_task}' model (version {found.version}); task '{task}' cannot start from it"
        )
    weights = found.tags.get(WEIGHTS_TAG) or f"{name}-v{found.version}-{found.run_id}"
    return RegisteredBase(spec, name, str(found.version), weights, run_task, str(found.run_id))


def pinned_version(spec: str, store: str, task: str, pin: Path | None) -> RegisteredBase:
    """The version pinned in `pin` for `spec`; else resolved now and pinned there (when given)."""
    if pin is not None and pin.is_file():
        recorded = json.loads(pin.read_text(encoding="utf-8"))
        if recorded.get("uri") == spec:
            return RegisteredBase(**recorded)
    base = resolve_version(spec, store, task)
    if pin is not None:
        pin.parent.mkdir(parents=True, exist_ok=True)
        staged = pin.with_name(f".{pin.name}.{os.getpid()}")
        staged.write_text(json.dumps(asdict(base), indent=1), encoding="utf-8")
        staged.replace(pin)
    return base


def registered_model_dir(base: RegisteredBase, store: str, cache_root: Path | None = None) -> Path:
    """The local directory of `base`'s weights and tokenizer, downloaded once per weights hash."""
    root = (cache_root if cache_root is not None else default_cache_root()).absolute()
    out_dir = root / f"registered-{base.weights_hash[:24]}"
    if (out_dir / MARKER).is_file():
        return out_dir
    staging = root / f".{out_dir.name}{STAGING_INFIX}{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _download(base, store, staging)
        (staging / MARKER).write_text(json.dumps(asdict(base), indent=1), encoding="utf-8")
        _readable_as_umask_allows(staging)  # a shared cache: MLflow downloads some files as 0600
        try:
            staging.rename(out_dir)
        except OSError:
            if not (out_dir / MARKER).is_file():  # not a concurrent download that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _download(base: RegisteredBase, store: str, staging: Path) -> None:
    """The version's config, weights and tokenizer, flat in `staging` (an adapter merged first)."""
    import mlflow

    download = staging.with_name(f"{staging.name}-download")
    with tracking_to(store):
        uri = f"models:/{base.name}/{base.version}"
        files = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(download)))
    try:
        if (files / "model" / "config.json").is_file():  # the transformers flavor
            shutil.copytree(files / "model", staging)
            tokenizer = files / "components" / "tokenizer"
            for path in tokenizer.iterdir() if tokenizer.is_dir() else []:
                shutil.copy2(path, staging / path.name)
        elif (files / "artifacts" / "adapter").is_dir():  # a LoRA adapter over a base model
            _merge_adapter(base, files, staging)
        else:
            raise _error(base.uri, f"version {base.version} holds no transformers model or adapter")
    finally:
        shutil.rmtree(download, ignore_errors=True)


def _merge_adapter(base: RegisteredBase, files: Path, staging: Path) -> None:
    """The adapter merged into the base model its version names, saved with the base's tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    mlmodel = yaml.safe_load((files / "MLmodel").read_text(encoding="utf-8"))
    base_dir = str(mlmodel["flavors"]["python_function"]["config"]["base_model"])  # its model_config
    if not Path(base_dir).is_dir():
        raise _error(base.uri, f"version {base.version} is an adapter over {base_dir}, not on this machine")
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    merged = PeftModel.from_pretrained(model, str(files / "artifacts" / "adapter")).merge_and_unload()
    merged.save_pretrained(str(staging), safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(str(staging))
