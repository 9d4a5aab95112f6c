"""The `distributed` workload: what each launcher costs on BANKING77, in one invocation.

Three runs of `refinery run` on the same examples, params and seed (global batch 32): one process
with 2 threads, torchrun with 2 processes x 1 thread, and Ray Train with 2 workers x 1 CPU. On a
2-core machine the point is each launcher's overhead (process start, gloo all-reduce, Ray's
start), not speed-up: the cores are the same. Reported per launcher: wall time of the whole run,
training samples/s (the Trainer's) and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measures import BIN, measured

LAUNCHERS: dict[str, tuple[dict[str, Any], str]] = {
    "1 process x 2 threads": ({"launcher": "none"}, "2"),
    "torchrun 2 x 1 thread": ({"launcher": "torchrun", "processes": 2}, "1"),
    "ray 2 workers x 1 CPU": ({"launcher": "ray", "processes": 2, "resources_per_worker": {"CPU": 1}}, "1"),
}


def run_distributed(
    raw_params: Any, spec: dict[str, Any], args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    """Wall time, samples/s and accuracy per launcher (`raw_params(work, spec, args, cache)`)."""
    results: dict[str, Any] = {}
    for name, (distributed, threads) in LAUNCHERS.items():
        with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
            work = Path(tmp)
            raw = raw_params(work, spec, args, work / "cache")
            raw["train"]["distributed"] = {**raw["train"]["distributed"], **distributed}
            params_path = work / "params.yaml"
            params_path.write_text(yaml.safe_dump(raw))
            command = [
                str(BIN / "refinery"),
                "run",
                "--params",
                str(params_path),
                "--workdir",
                str(work / "run"),
            ]
            wall, rss, _ = measured(command, {**env, "OMP_NUM_THREADS": threads})
            train = json.loads((work / "run" / "train" / "metrics.json").read_text())
            test = json.loads((work / "run" / "eval" / "metrics.json").read_text())
            results[name] = {
                "wall_s": wall,
                "train_runtime_s": train["train_runtime_s"],
                "samples_per_s": train["train_samples_per_second"],
                "accuracy": test["accuracy"],
                "world_size": train["world_size"],
                "peak_rss_mb_driver": rss,
            }
    return results


def distributed_table(results: dict[str, Any]) -> str:
    """The workload as a Markdown table."""
    lines = ["| launcher | wall s | train s | samples/s | test accuracy |", "|---|---|---|---|---|"]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['wall_s']:.0f} | {row['train_runtime_s']:.0f} | "
            f"{row['samples_per_s']:.1f} | {row['accuracy']:.3f} |"
        )
    return "\n".join(lines) + "\n"
