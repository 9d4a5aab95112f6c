"""The accuracy ablation of `make bench` (`--ablation`): which of Refinery's defaults costs accuracy
against the plain Trainer script (benchmarks/plain_trainer.py).

Refinery's default job differs from the plain script in four ways beside speed-neutral plumbing:
length-grouped batches, best-model selection with early stopping on the validation split, warmup and
weight decay, and truncation at the 99th percentile of train lengths. Each arm switches one of them off
alone (`ARMS`); `refinery` is the defaults. On each workload (run.py's; `--workloads`, BANKING77 and
the SST-2 subset by default) the plain script and every arm train with seeds 42, 43, … (`--seeds`) on
the same examples: the plain script gets Refinery's train split (validation held out) and test split,
as run.py's comparison does, and writes each test row's prediction. Every arm trains in
`train.precision: fp32` (or `--precision`): precision is the precision study's question, not this one's.
The order of the runs rotates from seed to seed, so none always meets a warm page cache.

Reported per arm: median training samples/s and its ratio to the plain script's, and test accuracy
minus the plain script's and minus Refinery's defaults, each with the precision study's paired
bootstrap (test rows resampled, each row's correctness averaged over the seeds first; the champion
gate's resamples, confidence and seed). An arm whose interval against the defaults lies above zero
names a default that costs accuracy.
Results: `benchmarks/results/<date>-<host>-ablation-<workloads>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmarks.measures import REPO, row_correctness
from benchmarks.precision_study import refinery_trained, same_setup, summarize, train_in_rotation
from tasks.core.config import ChampionGateConfig, parse_params
from tasks.task_types.classification.comparison import read_predictions

PLAIN, DEFAULTS = "plain", "refinery"
# arm: (what it switches off, the params it sets on top of the default job's)
ARMS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    DEFAULTS: ("nothing: Refinery's defaults", {}),
    "no_length_grouping": ("length-grouped batches (random batches)", {"train": {"group_by_length": False}}),
    "no_best_model": (
        "best-model selection and early stopping on validation (the last step's weights)",
        {"train": {"early_stopping_patience": None}},
    ),
    "no_warmup_weight_decay": (
        "warmup and weight decay (both 0, as the plain script)",
        {"train": {"warmup_ratio": 0.0, "weight_decay": 0.0}},
    ),
    "length_groups_of_8": (
        "length groups of 50 batches (8 batches a group: more lengths mixed within a batch, more padding)",
        {"train": {"length_group_batches": 8}},
    ),
    "no_length_cap": (
        "the 99th-percentile length cap (the longest train text; the model's limit)",
        {"tokenize": {"length_percentile": 100.0}},
    ),
}
ABLATION_WORKLOADS = ("banking77", "sst2", "emotion")


@dataclass(frozen=True)
class AblationRunner:
    """run.py's machinery. `params(work, spec, args, cache, seed)`: the default job's params;
    `refinery(run_dir, params_path, env)` and `plain(work, files, seed, env, predictions)` run one
    training; `files(work, spec, args)`: Refinery's train and test splits as the plain script's CSVs."""

    params: Callable[..., dict[str, Any]]
    refinery: Callable[[Path, Path, dict[str, str]], dict[str, Any]]
    plain: Callable[..., dict[str, Any]]
    files: Callable[[Path, dict[str, Any], argparse.Namespace], tuple[Path, Path]]


def plain_correctness(predictions: Path, test_csv: Path) -> pd.Series:
    """The plain script's per-row correctness, indexed like `correctness` (its rows are the test CSV's)."""
    answers = read_predictions(predictions)
    test = pd.read_csv(test_csv, keep_default_na=False, dtype=str)
    if len(answers) != len(test):
        raise RuntimeError(f"{predictions}: {len(answers)} predictions for {len(test)} rows of {test_csv}")
    return row_correctness(answers.assign(source_file=test["source_file"], source_row=test["source_row"]))


def arm_params(raw: dict[str, Any], arm: str, precision: str) -> dict[str, Any]:
    """The default job's params with `arm`'s difference switched off, in `precision`."""
    raw["train"]["precision"] = precision
    for section, values in ARMS[arm][1].items():
        raw[section].update(values)
    parse_params(raw, f"ablation arm {arm}")  # a typo in ARMS fails here, before an hour of training
    return raw


def train_arms(
    spec: dict[str, Any],
    args: argparse.Namespace,
    env: dict[str, str],
    runner: AblationRunner,
    arms: list[str],
    plain: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain script and every arm on every seed of one workload: samples/s, accuracy and
    per-row correctness; with `plain` (`earlier_plain`), the plain script's runs come from there."""
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as tmp:
        cache = Path(tmp) / "cache"  # tokenized once per length rule; each arm and seed its own training
        files = runner.files(Path(tmp), spec, args)

        def train_one(who: str, seed: int, work: Path) -> tuple[dict[str, Any], pd.Series]:
            if who == PLAIN:
                measured = runner.plain(work, files, seed, env, work / "predictions.csv")
                return measured, plain_correctness(work / "predictions.csv", files[1])
            raw = arm_params(runner.params(work, spec, args, cache, seed), who, args.precision or "fp32")
            return refinery_trained(runner.refinery, work, raw, env, f"{who}, seed {seed}")

        if plain is None:
            return train_in_rotation([PLAIN, *arms], args.seeds, Path(tmp), train_one)
        trained = train_in_rotation(arms, args.seeds, Path(tmp), train_one)
    if trained["rows"] != plain["rows"]:
        raise SystemExit(f"--plain-from {args.plain_from}: other test rows than this run's")
    return {**trained, "runs": {PLAIN: plain["runs"], **trained["runs"]}, "plain_from": args.plain_from}


def earlier_plain(args: argparse.Namespace, name: str, results: dict[str, Any]) -> dict[str, Any]:
    """The plain script's runs on workload `name` from an earlier ablation (`--plain-from`): its rows
    and per-seed runs, refused unless it ran the same seeds, epochs and subset on this CPU and torch
    (the plain script does not depend on Refinery's defaults, so its runs stay valid when they change)."""
    path = args.plain_from
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
        workload = earlier["ablation"][name]
        runs = workload["runs"][PLAIN]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"--plain-from: {path}: no plain-script runs of {name} in an ablation ({exc})"
        ) from exc
    same_setup(earlier, f"--plain-from: {path}", "ablation", args, results)
    return {"rows": workload["rows"], "runs": runs}


def summarize_arms(workload: dict[str, Any], cfg: ChampionGateConfig) -> dict[str, dict[str, Any]]:
    """Per arm: speed and accuracy against the plain script, and accuracy against Refinery's defaults."""
    against_plain = summarize(workload, cfg, PLAIN)
    against_defaults = summarize(workload, cfg, DEFAULTS)
    summary = {}
    for who, row in against_plain.items():
        versus = against_defaults[who]
        summary[who] = {
            **row,
            "vs_defaults": {key: versus[key] for key in ("delta", "low", "high", "per_seed")},
            # switching the default off gains accuracy beyond the noise: that default costs accuracy
            "default_costs_accuracy": who not in (PLAIN, DEFAULTS) and versus["low"] > 0.0,
        }
    return summary


def _interval(row: dict[str, Any]) -> str:
    spread = ", ".join(f"{d * 100:+.2f}" for d in row["per_seed"])
    return f"{row['delta'] * 100:+.2f} [{row['low'] * 100:+.2f}, {row['high'] * 100:+.2f}] ({spread})"


def ablation_table(results: dict[str, Any]) -> str:
    """The ablation as Markdown: per workload, one row per arm (the plain script first)."""
    confidence = results["bootstrap"]["confidence"]
    args = results["args"]
    lines = [
        f"# Accuracy ablation {results['date']} on {results['host']}",
        "",
        f"{results['cpu']}, {results['cores']} cores, torch {results['torch']}; seeds: {args['seeds']} "
        f"(42, 43, …), the same examples and seeds for every arm; epochs: {args['epochs']:g}; Refinery in "
        f"train.precision {args['precision'] or 'fp32'}. Each arm switches one of Refinery's defaults off.",
    ]
    for name, workload in results["ablation"].items():
        lines += [
            "",
            f"## {name}",
            "",
            "| arm | switched off | samples/s (× plain) | test accuracy | Δ vs plain, pts [CI] (per seed) "
            "| Δ vs Refinery's defaults, pts [CI] (per seed) | that default costs accuracy |",
            "|---|---|---|---|---|---|---|",
        ]
        for who, row in workload["summary"].items():
            what = "— (the plain Trainer script)" if who == PLAIN else ARMS[who][0]
            if who == PLAIN and workload.get("plain_from"):
                what = f"— (the plain Trainer script; its runs from {Path(workload['plain_from']).name})"
            versus = "—" if who in (PLAIN, DEFAULTS) else _interval(row["vs_defaults"])
            costs = "**yes**" if row["default_costs_accuracy"] else "no"
            costs = "—" if who in (PLAIN, DEFAULTS) else costs
            lines.append(
                f"| {who} | {what} | {row['samples_per_s']:.1f} ({row['speed_ratio']:.2f}×) | "
                f"{row['accuracy']:.4f} | {'—' if who == PLAIN else _interval(row)} | {versus} | {costs} |"
            )
    lines += [
        "",
        f"Intervals: {confidence:.0%} paired bootstrap over test rows ({results['bootstrap']['resamples']} "
        "resamples), each row's correctness averaged over the seeds first; per-seed differences in "
        "brackets after it. A default costs accuracy when switching it off alone lifts accuracy with an "
        "interval above zero.",
        "",
    ]
    return "\n".join(lines)


def ablation_plan(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The arms and workloads `args` ask for; a one-line exit for what the ablation cannot run."""
    arms = args.ablation_arms.split(",")
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise SystemExit(f"--ablation-arms: {', '.join(unknown)}; give arms of {', '.join(ARMS)}")
    if DEFAULTS not in arms:
        arms.insert(0, DEFAULTS)  # every arm is also compared with the defaults
    names = [name for name in args.workloads.split(",") if name in ABLATION_WORKLOADS]
    return arms, names or ["banking77", "sst2"]


def run_ablation(
    results: dict[str, Any],
    specs: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    env: dict[str, str],
    runner: AblationRunner,
    out: Path,
) -> str:
    """Run the ablation on run.py's `specs`, write its JSON and Markdown beside `out`, return the table."""
    arms, names = ablation_plan(args)
    cfg = parse_params(yaml.safe_load((REPO / "params.yaml").read_text())).gate.champion
    results.update(ablation={}, bootstrap={"resamples": cfg.resamples, "confidence": cfg.confidence})
    named = out.with_name(f"{out.name}-ablation-{'-'.join(names)}")
    table = ""
    for name in names:
        plain = earlier_plain(args, name, results) if args.plain_from else None
        trained = train_arms(specs[name], args, env, runner, arms, plain)
        results["ablation"][name] = {**trained, "summary": summarize_arms(trained, cfg)}
        named.with_suffix(".json").write_text(json.dumps(results, indent=2))  # each workload as it ends
        named.with_suffix(".md").write_text(table := ablation_table(results))
    return table
