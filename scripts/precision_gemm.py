"""What each `train.precision` variant does to one GEMM on this machine (CPU, and CUDA when present).

For a square fp32 matmul: FLOP/s and the error against fp64 under fp32, `fp32_bf16_matmul` (the
reduced-precision fp32 GEMM mode, set as training sets it), and bf16 autocast (what `bf16` and
`bf16_linear` run their GEMMs in). Whether a mode really computes in bf16 shows in the error: bf16
keeps 8 bits of mantissa (relative error ~1e-3), fp32 keeps 24 (~1e-7).

    python scripts/precision_gemm.py --out gemm.json      # a few seconds per mode and device
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.training.precision import cpu_flags
from tasks.training.precision_modes import reduced_precision_matmuls


def mode_context(mode: str, device: str) -> AbstractContextManager[Any]:
    """The context a training in `mode` computes its GEMMs under."""
    if mode == "fp32_bf16_matmul":
        return reduced_precision_matmuls(device == "cuda")
    if mode == "bf16_autocast":
        return torch.autocast(device, dtype=torch.bfloat16)
    return nullcontext()


def measure(mode: str, device: str, size: int, seconds: float) -> dict[str, float]:
    """FLOP/s of `size`² fp32 matmuls under `mode`, and their error against fp64."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    exact = (a.double() @ b.double()).to(device)
    a, b = a.to(device), b.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with mode_context(mode, device):
        out = (a @ b).double()
        sync()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        sync()
        elapsed = time.perf_counter() - start
    error = (out - exact).abs()
    return {
        "gflops": round(2 * size**3 * count / elapsed / 1e9, 1),
        "max_abs_error": float(error.max()),
        "relative_error": float(error.norm() / exact.norm()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    flags = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f"})
    report: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_bf16_flags": flags,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "size": args.size,
        "results": {},
    }
    for device in devices:
        for mode in ("fp32", "fp32_bf16_matmul", "bf16_autocast"):
            result = measure(mode, device, args.size, args.seconds)
            report["results"][f"{device}/{mode}"] = result
            print(f"{device:4} {mode:17} {result}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
