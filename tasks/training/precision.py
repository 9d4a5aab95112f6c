"""The number formats `train.precision` names, and what `auto` picks on a CPU.

Weights, optimizer state and gradients stay fp32 in every variant; they differ in what the forward
and backward passes compute in:

- `fp32`: everything in fp32 (on Ampere-or-newer GPUs the Trainer's TF32 matmuls, as before).
- `bf16`: the Trainer's bf16 autocast: linear layers and their outputs, GELU and dropout in bf16;
  layer norms, residual sums, softmax and the loss in fp32. While training on a CPU, attention
  scores and softmax are fp32 too: with attention dropout, SDPA takes its math path, which upcasts
  bf16 inputs (measured with torch 2.13; evaluation passes take the bf16 flash kernel).
- `fp16`: the Trainer's fp16 autocast with loss scaling (CUDA only).
- `fp32_bf16_matmul`: fp32 tensors, fp32 GEMMs allowed a reduced-precision algorithm: oneDNN's
  bf16 math mode on a CPU (`torch.backends.mkldnn.matmul.fp32_precision = "bf16"`, which
  `torch.set_float32_matmul_precision("medium")` sets too), TF32 on CUDA (where, on Ampere or
  newer, `fp32` has TF32 already). Process-wide, so it is set around the training only
  (`precision_modes.precision_applied`). On a CPU with AVX512-BF16 but no AMX, oneDNN keeps full
  fp32 accuracy in this mode: its speed-up is that of oneDNN's fp32 kernel over MKL's, not of bf16
  (README, Precision variants).
- `bf16_linear`: bf16 autocast inside `nn.Linear` layers only, their outputs cast back to fp32: the
  GEMMs (forward and backward) run in bf16, every other operation in fp32.

`auto` is bf16 autocast on CUDA (fp16 on GPUs without bf16). On a CPU it is the choice of the
precision study (`make bench BENCH_ARGS=--precision-study --write-decision`), committed as
`precision_study.json` beside this file, on CPUs that have the native-bf16 flags the study's CPU
had; fp32 without a decision (the study decides, not a single run).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tasks.core.errors import ConfigError

CPUINFO = Path("/proc/cpuinfo")
DECISION_FILE = Path(__file__).with_name("precision_study.json")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # the CPU multiplies bf16 in hardware
# the Trainer's autocast for each variant: the others run without it (bf16_linear brings its own)
AUTOCAST = {"bf16": "bf16", "fp16": "fp16", "fp32": "no", "fp32_bf16_matmul": "no", "bf16_linear": "no"}
USES_BF16 = ("bf16", "bf16_linear")  # need a bf16 GPU on CUDA; emulated on CPUs without native bf16
CPU_PRECISIONS = ("fp32", "bf16", "fp32_bf16_matmul", "bf16_linear")  # what `auto` may pick on a CPU


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The instruction-set flags /proc/cpuinfo lists (empty where it cannot be read)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    lines = [line.split(":", 1)[-1] for line in text.splitlines() if line.startswith("flags")]
    return {flag for line in lines for flag in line.split()}


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """AVX512-BF16 or AMX: the CPU multiplies bf16 in hardware (elsewhere bf16 is emulated, slower)."""
    return bool(cpu_flags(cpuinfo) & set(NATIVE_BF16_FLAGS))


@dataclass(frozen=True)
class StudyDecision:
    """The precision study's choice for `auto` on a CPU, and the CPU flags it was measured with."""

    precision: str
    cpu_flags: tuple[str, ...]  # `auto` follows the choice on CPUs that have every one of these


def read_decision(path: Path | None = None) -> StudyDecision | None:
    """The committed decision (`path`, by default `DECISION_FILE`), or None where there is none."""
    path = path or DECISION_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the precision study's decision ({err})") from err
    precision, flags = raw.get("precision"), raw.get("cpu_flags")
    if precision not in CPU_PRECISIONS:
        raise ConfigError(f"{path}: precision {precision!r} is not one of {', '.join(CPU_PRECISIONS)}")
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        raise ConfigError(f"{path}: cpu_flags must be a list of /proc/cpuinfo flags")
    return StudyDecision(precision, tuple(flags))


def auto_cpu_precision(decision: Path | None = None, cpuinfo: Path = CPUINFO) -> str:
    """What `auto` trains in on this CPU: the study's choice where the CPU has its flags, else fp32."""
    found = read_decision(decision)
    if found is None or not set(found.cpu_flags) <= cpu_flags(cpuinfo):
        return "fp32"
    return found.precision


def decision_fingerprint(decision: Path | None = None) -> str:
    """A hash of the committed decision: a new study's choice is a new training for `auto`."""
    decision = decision or DECISION_FILE
    return hashlib.sha256(decision.read_bytes()).hexdigest()[:16] if decision.is_file() else "none"
