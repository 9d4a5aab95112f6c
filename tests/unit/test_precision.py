"""Which precision `train.precision` resolves to on each kind of hardware, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.config import ConfigError, TrainConfig
from tasks.training.arguments import (
    cpu_has_native_bf16,
    cuda_has_tf32,
    training_arguments,
    training_precision,
)


@pytest.mark.parametrize(
    ("cuda", "cuda_bf16", "expected"),
    [
        (True, True, "bf16"),  # Ampere and newer
        (True, False, "fp16"),  # older GPUs: fp16 with loss scaling
        (False, False, "fp32"),  # CPU: bf16 autocast cost accuracy beyond the 0.5-point budget
    ],
)
def test_auto_is_mixed_precision_on_cuda_only(cuda: bool, cuda_bf16: bool, expected: str) -> None:
    assert training_precision("auto", cuda, cuda_bf16) == expected


def test_explicit_precision_is_kept_where_the_hardware_has_it() -> None:
    assert training_precision("fp32", True, True) == "fp32"
    assert training_precision("bf16", False, False) == "bf16"  # asked for on a CPU
    assert training_precision("fp16", True, False) == "fp16"


def test_impossible_precision_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.precision: fp16 needs a CUDA GPU"):
        training_precision("fp16", False, False)
    with pytest.raises(ConfigError, match=r"train\.precision: this CUDA GPU has no bf16"):
        training_precision("bf16", True, False)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16(info)
    info.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_native_bf16(info)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_fp32_training_arguments_have_no_autocast(tmp_path: Path) -> None:
    args = training_arguments(TrainConfig(precision="fp32"), tmp_path)
    assert not args.bf16 and not args.fp16 and not args.torch_compile
    assert args.tf32 is (True if cuda_has_tf32() else None)  # TF32 only where tensor cores have it


def test_torch_compile_is_passed_to_the_trainer(tmp_path: Path) -> None:
    assert training_arguments(TrainConfig(torch_compile=True), tmp_path).torch_compile
