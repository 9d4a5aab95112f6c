"""The `sweep` workload of `make bench`: the same trials with the median pruner and without pruning.

On a workload of benchmarks/run.py (BANKING77 by default, `--sweep-dataset sst2` for a dataset the
defaults were not chosen on, or `emotion`), `refinery sweep --no-register` runs `--sweep-trials` trials of
params.yaml's `sweep.space` once per pruner (`--sweep-pruners`, default median and none), each in
its own process and study, with the same seeded sampler. Reported for each: wall time, best
validation accuracy and the trial counts; then the winner's params (of the first pruner's sweep)
and the defaults are each trained by `refinery run` on the same train split and scored on the same
test split. `--sweep-train-samples N` sweeps on a stratified subset of N training rows (the full
test split is kept). `--quick` is a small subset and 4 trials: it checks the harness, not the numbers.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from benchmarks.measures import BIN, REPO, correctness, measured


@dataclass(frozen=True)
class SweepSetup:
    """What the sweep workload runs on: a workload of benchmarks/run.py, its size and the pruners."""

    dataset: str = "banking77"
    train_samples: int | None = None  # None: the whole training split
    trials: int = 12
    pruners: tuple[str, ...] = ("median", "none")


def sweep_params(work: Path, quick: bool, setup: SweepSetup, spec: dict[str, Any]) -> dict[str, Any]:
    """params.yaml pointed at the workload `spec` with fresh caches; a subset and a small space when quick."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(
        train_path=spec["train"], test_path=spec["test"], label_column=spec["label"], labels_path=None,
        format=spec["format"], csv_delimiter=spec.get("delimiter"),
        max_train_samples=600 if quick else setup.train_samples, max_test_samples=500 if quick else None,
    )  # fmt: skip
    if (
        setup.dataset != "banking77"
    ):  # as benchmarks/run.py reads the others (their public files repeat texts)
        raw["validate"].update(max_duplicate_fraction=0.05, allow_leakage=True, min_examples_per_class=2)
    raw["tokenize"]["cache_dir"] = str(work / "cache" / "tokenized")
    raw["train"].update(checkpoint_dir=str(work / "cache" / "checkpoints"), progress_bars=False)
    raw["gate"]["thresholds"] = {}
    raw["register"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name="bench-sweep")
    raw["sweep"].update(trials=4 if quick else setup.trials, storage=f"sqlite:///{work / 'studies.db'}")
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


def run_sweep_workload(
    work: Path, quick: bool, env: dict[str, str], setup: SweepSetup, spec: dict[str, Any]
) -> dict[str, Any]:
    """Each pruner's sweep, then the first one's winner and the defaults on the test split."""
    params_path = work / "params.yaml"
    raw = sweep_params(work, quick, setup, spec)
    params_path.write_text(yaml.safe_dump(raw))
    result: dict[str, Any] = {
        "dataset": setup.dataset,
        "train_samples": raw["data"]["max_train_samples"],
        "trials": raw["sweep"]["trials"],
        "pruners": list(setup.pruners),
    }
    for pruner in setup.pruners:
        result[pruner] = run_sweep(work, params_path, pruner, env)
        print(f"[sweep] {pruner}: {result[pruner]}", file=sys.stderr)
    winner = result[setup.pruners[0]]["best_params"]
    result["winner_test_accuracy"] = test_accuracy(work, params_path, "winner", winner, env)
    result["defaults_test_accuracy"] = test_accuracy(work, params_path, "defaults", {}, env)
    result["winner_vs_defaults"] = paired_difference(
        work / "defaults" / "eval" / "predictions.csv", work / "winner" / "eval" / "predictions.csv"
    )
    return result


def paired_difference(defaults_csv: Path, winner_csv: Path) -> dict[str, Any]:
    """Winner minus defaults in test accuracy on the same rows: the project's paired bootstrap
    (95 % interval, 2,000 resamples) and McNemar's exact p, so one draw is not read as a gain."""
    from tasks.comparison.statistics import mcnemar_pairs, paired_bootstrap_scores

    defaults, winner = correctness(defaults_csv), correctness(winner_csv)
    shared = len(defaults.index.intersection(winner.index))
    if shared != len(defaults) or shared != len(winner):
        raise ValueError(f"{winner_csv}: {len(winner)} test rows, {shared} shared with {defaults_csv}")
    boot = paired_bootstrap_scores(defaults.to_numpy(), winner.to_numpy(), "accuracy", 2000)
    test = mcnemar_pairs(defaults.to_numpy() == 1.0, winner.to_numpy() == 1.0)
    return {
        "examples": shared,
        "difference": boot.delta,
        "low": boot.low,
        "high": boot.high,
        "defaults_only_right": test.champion_only,
        "winner_only_right": test.challenger_only,
        "mcnemar_p": test.p_exact,
    }


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def sweep_table(result: dict[str, Any]) -> str:
    """The README table of the sweep workload: one column per pruner."""
    pruners = result["pruners"]
    sweeps = [result[p] for p in pruners]
    size = f"{result['train_samples']} training rows" if result["train_samples"] else "all training rows"
    first, blank = sweeps[0], [""] * (len(pruners) - 1)

    def row(name: str, cells: list[str]) -> str:
        return f"| {name} | " + " | ".join(cells) + " |"

    counts = [f"{s['counts']['complete']} / {s['counts']['pruned']} / {s['counts']['fail']}" for s in sweeps]
    tested = f"{result['winner_test_accuracy']:.4f} / {result['defaults_test_accuracy']:.4f}"
    lines = [
        f"{result['dataset']}, {size}, {result['trials']} trials a sweep\n",
        row("sweep", [f"pruner {p}" for p in pruners]),
        "|---|" + "---|" * len(pruners),
        row("wall time", [f"{s['wall_s']:.1f} s ({s['wall_s'] / first['wall_s']:.2f}x)" for s in sweeps]),
        row("best validation accuracy", [f"{s['best_validation_accuracy']:.4f}" for s in sweeps]),
        row("trials complete / pruned / failed", counts),
        row(f"best params ({pruners[0]})", [_shown(first["best_params"]), *blank]),
        row("test accuracy: winner / defaults", [tested, *blank]),
    ]
    paired = result.get("winner_vs_defaults")
    if paired:
        low, high = 100 * paired["low"], 100 * paired["high"]
        shown = (
            f"{100 * paired['difference']:+.2f} points [{low:+.2f}, {high:+.2f}],"
            f" McNemar p = {paired['mcnemar_p']:.3g}"
        )
        lines.append(row("winner − defaults (95 % CI)", [shown, *blank]))
    return "\n".join(lines) + "\n"
