"""The `sweep` workload of `make bench`: the same trials with the median pruner and without pruning.

On BANKING77 (MiniLM), `refinery sweep --no-register` runs `trials` trials of params.yaml's
`sweep.space` twice, each in its own process and study, with the same seeded sampler: once with
`sweep.pruner: median`, once with `none`. Reported for each: wall time, best validation accuracy
and the trial counts; then the winner's params (of the pruned sweep) and the defaults are each
trained by `refinery run` and scored on the test split. `--quick` is a small subset and 4 trials:
it checks the harness, not the numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml

from benchmarks.measures import BIN, REPO, measured


def sweep_params(work: Path, quick: bool) -> dict[str, Any]:
    """params.yaml pointed at BANKING77 with fresh caches; a subset and a small space when quick."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(max_train_samples=600 if quick else None, max_test_samples=500 if quick else None)
    raw["tokenize"]["cache_dir"] = str(work / "cache" / "tokenized")
    raw["train"].update(checkpoint_dir=str(work / "cache" / "checkpoints"), progress_bars=False)
    raw["gate"]["thresholds"] = {}
    raw["register"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name="bench-sweep")
    raw["sweep"].update(trials=4 if quick else 12, storage=f"sqlite:///{work / 'studies.db'}")
    if quick:  # two evaluations a trial, so that the median pruner has something to judge
        raw["sweep"].update(pruner_startup_trials=1)
        raw["sweep"]["space"]["train.epochs"] = {"choices": [2]}
    return raw


def run_sweep(work: Path, params_path: Path, pruner: str, env: dict[str, str]) -> dict[str, Any]:
    """One `refinery sweep --no-register` with `pruner`: wall time, best value and params, counts."""
    study = f"bench-{pruner}"
    command = [str(BIN / "refinery"), "sweep", "--params", str(params_path), "--no-register", "--study",
               study, "--set", f"sweep.pruner={pruner}", "--workdir", str(work / study)]  # fmt: skip
    wall, rss, _ = measured(command, env)
    storage = yaml.safe_load(params_path.read_text())["sweep"]["storage"]
    found = optuna.load_study(study_name=study, storage=storage)
    states = [t.state.name.lower() for t in found.trials]
    return {
        "wall_s": wall,
        "peak_rss_mb": rss,
        "best_validation_accuracy": found.best_value,
        "best_params": found.best_params,
        "counts": {s: states.count(s) for s in ("complete", "pruned", "fail")},
    }


def test_accuracy(
    work: Path, params_path: Path, name: str, overrides: dict[str, Any], env: dict[str, str]
) -> float:
    """`refinery run` with `overrides`: the test accuracy of what it trains."""
    command = [str(BIN / "refinery"), "run", "--params", str(params_path), "--workdir", str(work / name)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    measured(command, env)
    return float(json.loads((work / name / "eval" / "metrics.json").read_text())["accuracy"])


def run_sweep_workload(work: Path, quick: bool, env: dict[str, str]) -> dict[str, Any]:
    """Both sweeps, then the pruned sweep's winner and the defaults on the test split."""
    params_path = work / "params.yaml"
    params_path.write_text(yaml.safe_dump(sweep_params(work, quick)))
    result: dict[str, Any] = {"trials": 4 if quick else 12}
    for pruner in ("median", "none"):
        result[pruner] = run_sweep(work, params_path, pruner, env)
        print(f"[sweep] {pruner}: {result[pruner]}", file=sys.stderr)
    result["winner_test_accuracy"] = test_accuracy(
        work, params_path, "winner", result["median"]["best_params"], env
    )
    result["defaults_test_accuracy"] = test_accuracy(work, params_path, "defaults", {}, env)
    return result


def sweep_table(result: dict[str, Any]) -> str:
    """The README table of the sweep workload."""
    median, none = result["median"], result["none"]
    rows = [
        "| sweep of {n} trials | median pruner | no pruning | ratio |".format(n=result["trials"]),
        "|---|---|---|---|",
        f"| wall time | {median['wall_s']:.1f} s | {none['wall_s']:.1f} s | "
        f"{median['wall_s'] / none['wall_s']:.2f} |",
        f"| best validation accuracy | {median['best_validation_accuracy']:.4f} | "
        f"{none['best_validation_accuracy']:.4f} | |",
        f"| trials complete / pruned | {median['counts']['complete']} / {median['counts']['pruned']} | "
        f"{none['counts']['complete']} / {none['counts']['pruned']} | |",
        f"| test accuracy: winner (median) vs defaults | {result['winner_test_accuracy']:.4f} | "
        f"{result['defaults_test_accuracy']:.4f} | |",
    ]
    return "\n".join(rows) + "\n"
