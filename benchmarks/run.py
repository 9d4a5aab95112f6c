"""Refinery against the plain Trainer script, side by side, in one invocation.

For each workload the two are run alternately `--repeats` times (each in its own process, so
peak RSS is per run), and the medians and ratios are reported: wall time, training samples/s,
non-padding tokens/s, peak RSS, test accuracy, and utilisation = useful training FLOP/s over the
machine's dense GEMM FLOP/s measured in the same invocation. Results go to
`benchmarks/results/<date>-<host>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
BIN = Path(sys.executable).parent


def gemm_flops(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0) -> float:
    """Dense matmul FLOP/s of this machine for `dtype` (square `size` matrices)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `command`; return wall seconds, the child's own peak RSS in MB, and its stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # reaps the child: rusage of this process alone
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"benchmark command failed ({process.returncode}): {shlex.join(command)}")
    return wall, usage.ru_maxrss / 1024, out


def model_flops_per_token(model_dir: Path, mean_tokens: float) -> float:
    """Training FLOPs per useful token: 6 x non-embedding params + attention (Kaplan et al.)."""
    config = json.loads((model_dir / "config.json").read_text())
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    non_embedding = layers * 12 * hidden * hidden  # attention (4 d^2) + feed-forward (8 d^2)
    return 6 * non_embedding + 6 * layers * mean_tokens * hidden


def workloads(quick: bool) -> dict[str, dict[str, Any]]:
    cap = 2000 if quick else None
    return {
        "banking77": {
            "train": "data/banking77/train.csv",
            "test": "data/banking77/test.csv",
            "label": "category",
            "sep": ",",
            "max_train": cap,
        },
        "sst2": {
            "train": str(SHARED / "sst2" / "train.tsv"),
            "test": str(SHARED / "sst2" / "dev.tsv"),
            "label": "label",
            "sep": "\t",
            "max_train": 500 if quick else 8000,  # a fixed subset: SST-2 in full takes an hour here
        },
    }


def refinery_params(work: Path, spec: dict[str, Any], epochs: float) -> Path:
    """Params for Refinery on a workload, with fresh caches (a first, uncached run)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(
        train_path=spec["train"],
        test_path=spec["test"],
        label_column=spec["label"],
        labels_path=None,
        format="tsv" if spec["sep"] == "\t" else "csv",
        max_train_samples=spec["max_train"],
        validation_fraction=0.1,
    )
    raw["validate"].update(max_duplicate_fraction=0.05, allow_leakage=True, min_examples_per_class=2)
    raw["tokenize"]["cache_dir"] = str(work / "cache" / "tokenized")
    raw["train"].update(
        epochs=epochs, checkpoint_dir=str(work / "cache" / "checkpoints"), progress_bars=False
    )
    raw["gate"]["thresholds"] = {}
    raw["register"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name="bench")
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_workload(name: str, spec: dict[str, Any], repeats: int, epochs: float, env: dict[str, str]) -> dict:
    from tasks.base_models import resolve_base_model

    model = resolve_base_model("minilm")
    rows: dict[str, list[dict[str, float]]] = {"plain": [], "refinery": [], "refinery_rerun": []}
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            work = Path(tmp)
            plain_cmd = [sys.executable, "benchmarks/plain_trainer.py", "--train", spec["train"], "--test"]
            plain_cmd += [
                spec["test"],
                "--label-column",
                spec["label"],
                "--sep",
                spec["sep"],
                "--model",
                str(model),
            ]
            plain_cmd += ["--epochs", str(epochs), "--output-dir", str(work / "plain")]
            if spec["max_train"]:
                plain_cmd += ["--max-train-samples", str(int(spec["max_train"] * 0.9))]
            wall, rss, out = measured(plain_cmd, env)
            plain = json.loads(out.strip().splitlines()[-1])
            tokens = plain["train_tokens_per_epoch"] * epochs
            rows["plain"].append(
                {
                    "wall_s": wall,
                    "samples_per_s": plain["train_samples_per_second"],
                    "tokens_per_s": tokens / plain["train_runtime_s"],
                    "mean_tokens": plain["train_tokens_per_epoch"] / plain["train_examples"],
                    "peak_rss_mb": rss,
                    "accuracy": plain["test_accuracy"],
                }
            )
            params = refinery_params(work, spec, epochs)
            for key in ("refinery", "refinery_rerun"):
                run_dir = work / key
                command = [str(BIN / "refinery"), "run", "--params", str(params), "--workdir", str(run_dir)]
                wall, rss, _ = measured(command, env)
                train = json.loads((run_dir / "train" / "metrics.json").read_text())
                test = json.loads((run_dir / "eval" / "metrics.json").read_text())
                rows[key].append(
                    {
                        "wall_s": wall,
                        "samples_per_s": train["train_samples_per_second"],
                        "tokens_per_s": tokens / max(train["train_runtime_s"], 1e-9),
                        "peak_rss_mb": rss,
                        "accuracy": test["accuracy"],
                    }
                )
            print(f"[{name}] repeat {i + 1}/{repeats} done", file=sys.stderr)
    medians = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rows.items() if v}
    medians["flops_per_token"] = {"value": model_flops_per_token(model, medians["plain"]["mean_tokens"])}
    return {"runs": rows, "median": medians}


def report(results: dict[str, Any]) -> str:
    """The markdown table of ratios."""
    peak = results["gemm_flops"]
    lines = [
        f"# Benchmark {results['date']} on {results['host']}",
        "",
        f"CPU: {results['cpu']}, {results['threads']} torch threads.",
        "",
        f"Measured dense GEMM: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s.",
        "",
        "| workload | metric | plain Trainer | Refinery | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, result in results["workloads"].items():
        plain, ours, rerun = (result["median"][k] for k in ("plain", "refinery", "refinery_rerun"))
        per_token = result["median"]["flops_per_token"]["value"]
        for metric, fmt in (
            ("wall_s", ".1f"),
            ("samples_per_s", ".1f"),
            ("tokens_per_s", ".0f"),
            ("peak_rss_mb", ".0f"),
        ):
            ratio = ours[metric] / plain[metric]
            lines.append(
                f"| {name} | {metric} | {plain[metric]:{fmt}} | {ours[metric]:{fmt}} | {ratio:.2f} |"
            )
        lines.append(
            f"| {name} | test accuracy | {plain['accuracy']:.4f} | {ours['accuracy']:.4f} | "
            f"{(ours['accuracy'] - plain['accuracy']) * 100:+.2f} pts |"
        )
        util_plain = plain["tokens_per_s"] * per_token / peak["fp32"]
        util_ours = ours["tokens_per_s"] * per_token / peak["fp32"]
        lines.append(
            f"| {name} | utilisation (of fp32 peak) | {util_plain:.1%} | {util_ours:.1%} | "
            f"{util_ours / util_plain:.2f} |"
        )
        lines.append(
            f"| {name} | cached re-run wall | | {rerun['wall_s']:.1f} s | "
            f"{rerun['wall_s'] / ours['wall_s']:.2f} of first run |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--workloads", default="banking77,sst2")
    parser.add_argument("--quick", action="store_true", help="small subsets: checks the harness, not speed")
    args = parser.parse_args()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    specs = workloads(args.quick)
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "gemm_flops": {"fp32": gemm_flops(torch.float32), "bf16": gemm_flops(torch.bfloat16)},
        "workloads": {},
    }
    for name in args.workloads.split(","):
        results["workloads"][name] = run_workload(name, specs[name], args.repeats, args.epochs, env)
    out = REPO / "benchmarks" / "results" / f"{results['date']}-{results['host']}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    table = report(results)
    out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
