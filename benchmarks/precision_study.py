"""The precision study of `make bench` (`--precision-study`): which `train.precision` `auto` takes on a CPU.

On BANKING77 and the SST-2 subset (benchmarks/run.py's workloads; `--workloads` may pick one of
them, `--quick` the small subsets), every variant (`--study-variants`; fp32 is the reference) is
trained by `refinery run`, each run in its own process as run.py runs Refinery, with seeds 42, 43, …
(`--seeds`, 5 by default): same training and test examples and same seeds for every variant, the
order of the variants rotated from seed to seed. Reported per variant and workload: the median
training samples/s and its ratio to fp32's, and test accuracy minus fp32's with a paired bootstrap
interval: the champion gate's (`tasks.comparison.statistics`, params.yaml's `gate.champion`
resamples, confidence and seed) on per-example correctness. Seeds are pooled by averaging each test
row's correctness over the seeds first, so the bootstrap resamples test rows, each carrying all of
its seeds (the same rows and seeds on both sides): the interval covers which test rows were drawn
and the seed noise those rows show; the per-seed differences are listed beside it.

The decision: the fastest variant (geometric mean of its samples/s ratios) whose interval against
fp32 includes zero or lies above it on both workloads, fp32 where none is faster. `--write-decision`
stores it as tasks/training/precision_study.json, which `train.precision: auto` follows on CPUs
with the native-bf16 flags this one has; it refuses a study of fewer than 5 seeds, one workload
or `--quick` subsets. `--study-from FILE` (repeatable) takes workloads an earlier study's results
file trained (same variants, seeds, epochs, CPU and torch) instead of training them again, so a
study can be run one workload at a time and decided on together.
Results: `benchmarks/results/<date>-<host>-precision-study.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import torch
import yaml

from benchmarks.measures import REPO, correctness, gemm_flops
from tasks.comparison.statistics import paired_bootstrap_scores
from tasks.core.config import ChampionGateConfig, Precision, parse_params
from tasks.training.precision import DECISION_FILE, NATIVE_BF16_FLAGS, cpu_flags
from tasks.training.precision_modes import reduced_precision_matmuls

VARIANTS = ("fp32", "bf16", "fp32_bf16_matmul", "bf16_linear")
REFERENCE = "fp32"
STUDY_WORKLOADS = ("banking77", "sst2")
MIN_SEEDS = 5  # the evidence bar for a decision
DECISION_NAME = str(DECISION_FILE.relative_to(REPO))
RULE = (
    "the fastest variant (geometric mean of its samples/s ratios to fp32) whose paired-bootstrap "
    "interval of test accuracy minus fp32's includes zero or lies above it on every workload; "
    "fp32 if none is faster"
)


@dataclass(frozen=True)
class StudyRunner:
    """run.py's machinery: `params(work, spec, args, cache, seed)` and `run(run_dir, params_path, env)`."""

    params: Callable[..., dict[str, Any]]
    run: Callable[[Path, Path, dict[str, str]], dict[str, Any]]


# one training: (who, seed, its own empty work directory) -> (measurements, per-row correctness)
TrainOne = Callable[[str, int, Path], tuple[dict[str, Any], pd.Series]]


def train_in_rotation(names: list[str], seeds: int, root: Path, train_one: TrainOne) -> dict[str, Any]:
    """Every one of `names` on seeds 42, 43, …, the order rotated from seed to seed so none always meets
    a warm page cache; each training in its own directory under `root` (its own MLflow store: no
    champion from another run), removed once read with `root/cache`'s checkpoints. Returns the test
    rows, which every training must share, and per name the runs: seed, measurements, correctness."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    rows: list[str] | None = None
    for i in range(seeds):
        seed = 42 + i
        for who in names[i % len(names) :] + names[: i % len(names)]:
            work = root / f"{who}-{seed}"
            work.mkdir()
            measured, right = train_one(who, seed, work)
            if rows is None:
                rows = right.index.tolist()
            elif right.index.tolist() != rows:
                raise RuntimeError(f"{who}, seed {seed}: other test rows than the first run's")
            bits = "".join("1" if r else "0" for r in right.to_numpy())
            runs[who].append({"seed": seed, **measured, "right": bits})
            shutil.rmtree(work)  # the model and checkpoints: 0.5 GB a training, read already
            shutil.rmtree(root / "cache" / "checkpoints", ignore_errors=True)
    return {"rows": rows, "runs": runs}


def refinery_trained(
    run: Callable[[Path, Path, dict[str, str]], dict[str, Any]],
    work: Path,
    raw: dict[str, Any],
    env: dict[str, str],
    label: str,
) -> tuple[dict[str, Any], pd.Series]:
    """`refinery run` on params `raw` in `work`: its measurements and per-row correctness; an error
    where it reused a finished training instead of training."""
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    measured = run(work / "run", work / "params.yaml", env)
    if measured["reused_training"]:
        raise RuntimeError(f"{label}: reused a training instead of training")
    return measured, correctness(work / "run" / "eval" / "predictions.csv")


def train_variants(
    spec: dict[str, Any],
    args: argparse.Namespace,
    env: dict[str, str],
    runner: StudyRunner,
    variants: list[str],
) -> dict[str, Any]:
    """Every variant on every seed of one workload: samples/s, accuracy and per-row correctness."""
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        cache = Path(tmp) / "cache"  # tokenized once per workload; each variant and seed its own training

        def train_one(variant: str, seed: int, work: Path) -> tuple[dict[str, Any], pd.Series]:
            raw = runner.params(work, spec, args, cache, seed)
            raw["train"]["precision"] = variant
            return refinery_trained(runner.run, work, raw, env, f"{variant}, seed {seed}")

        return train_in_rotation(variants, args.seeds, Path(tmp), train_one)


def paired_difference(reference: np.ndarray, variant: np.ndarray, cfg: ChampionGateConfig) -> dict[str, Any]:
    """Variant minus reference accuracy from (seeds x rows) correctness, same seeds and rows on both
    sides: the bootstrap resamples rows of the seed-averaged correctness (module docstring)."""
    if reference.shape != variant.shape:
        raise ValueError(f"paired runs: shapes {reference.shape} and {variant.shape} differ")
    boot = paired_bootstrap_scores(
        reference.mean(axis=0), variant.mean(axis=0), "accuracy", cfg.resamples, cfg.confidence, cfg.seed
    )
    per_seed = (variant.mean(axis=1) - reference.mean(axis=1)).tolist()
    return {"delta": boot.delta, "low": boot.low, "high": boot.high, "per_seed": per_seed}


def summarize(
    workload: dict[str, Any], cfg: ChampionGateConfig, reference: str = REFERENCE
) -> dict[str, dict[str, Any]]:
    """Per variant: median samples/s and its ratio to the reference's (fp32), mean accuracy, the
    paired difference from the reference (the ablation's reference is the plain script)."""
    runs = workload["runs"]

    def matrix(variant: str) -> np.ndarray:
        ordered = sorted(runs[variant], key=lambda run: run["seed"])
        return np.array([[float(bit) for bit in run["right"]] for run in ordered])

    base_speed = statistics.median(run["samples_per_s"] for run in runs[reference])
    summary: dict[str, dict[str, Any]] = {}
    for variant, measured in runs.items():
        seeds = sorted(run["seed"] for run in measured)
        if seeds != sorted(run["seed"] for run in runs[reference]):
            raise ValueError(f"{variant}: seeds {seeds} differ from {reference}'s")
        speed = statistics.median(run["samples_per_s"] for run in measured)
        summary[variant] = {
            "samples_per_s": speed,
            "speed_ratio": speed / base_speed,
            "accuracy": statistics.fmean(run["accuracy"] for run in measured),
            "seeds": seeds,
            **paired_difference(matrix(reference), matrix(variant), cfg),
        }
    return summary


def decide(summaries: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The choice for `auto` (RULE) from each workload's `summarize`, with every variant's standing."""
    variants = list(next(iter(summaries.values())))
    standing: dict[str, dict[str, Any]] = {}
    for variant in variants:
        ratios = [summaries[w][variant]["speed_ratio"] for w in summaries]
        standing[variant] = {
            "speed_ratio": math.exp(statistics.fmean(math.log(r) for r in ratios)),
            "accuracy_holds": all(summaries[w][variant]["high"] >= 0.0 for w in summaries),
        }
    eligible = [v for v in variants if standing[v]["accuracy_holds"] and standing[v]["speed_ratio"] > 1.0]
    choice = max(eligible, key=lambda v: standing[v]["speed_ratio"], default=REFERENCE)
    return {"precision": choice, "rule": RULE, "workloads": sorted(summaries), "standing": standing}


def study_table(results: dict[str, Any]) -> str:
    """The study as Markdown: one row per variant, a column pair per workload, then the decision."""
    study, decision = results["precision_study"], results["decision"]
    names = list(study)
    confidence = results["bootstrap"]["confidence"]
    gemm = results["gemm_flops"]
    lines = [
        f"# Precision study {results['date']} on {results['host']}",
        "",
        f"{results['cpu']}, {results['cores']} cores, torch {results['torch']}; seeds per variant: "
        f"{results['args']['seeds']} (42, 43, …), the same examples and seeds for each; epochs: "
        f"{results['args']['epochs']:g}. Dense GEMM: fp32 {gemm['fp32'] / 1e9:.0f}, fp32 in oneDNN's "
        f"bf16 mode {gemm['fp32_bf16_matmul'] / 1e9:.0f}, bf16 {gemm['bf16'] / 1e9:.0f} GFLOP/s.",
        "",
        "| variant | " + " | ".join(f"{n}: samples/s (× fp32) | {n}: Δ accuracy vs fp32, pts" for n in names)
        + " | accuracy holds |",
        "|---|" + "---|---|" * len(names) + "---|",
    ]  # fmt: skip
    earlier = [f"{name} from {study['from']}" for name, study in study.items() if study.get("from")]
    if earlier:
        lines[2] += f" Trained by an earlier run of the study: {'; '.join(earlier)}."
    for variant, standing in decision["standing"].items():
        cells = []
        for name in names:
            row = study[name]["summary"][variant]
            spread = ", ".join(f"{d * 100:+.2f}" for d in row["per_seed"])
            cells.append(f"{row['samples_per_s']:.1f} ({row['speed_ratio']:.2f}×)")
            interval = f"[{row['low'] * 100:+.2f}, {row['high'] * 100:+.2f}]"
            cells.append(f"{row['delta'] * 100:+.2f} {interval} (seeds: {spread})")
        lines.append(
            f"| {variant} | " + " | ".join(cells) + f" | {'yes' if standing['accuracy_holds'] else 'no'} |"
        )
    lines += [
        "",
        f"Intervals: {confidence:.0%} paired bootstrap over test rows ({results['bootstrap']['resamples']} "
        "resamples), each row's correctness averaged over the seeds first.",
        "",
        f"Decision: **{decision['precision']}**, by the rule: {decision['rule']}.",
        "",
    ]
    return "\n".join(lines)


def decision_problems(seeds: int, names: list[str], quick: bool) -> list[str]:
    """Why a study cannot decide for `auto`: too few seeds, a workload missing, quick subsets."""
    problems = [f"{seeds} seeds (at least {MIN_SEEDS})"] if seeds < MIN_SEEDS else []
    if set(names) != set(STUDY_WORKLOADS):
        problems.append(f"workloads {', '.join(sorted(names))} (both of {', '.join(STUDY_WORKLOADS)})")
    if quick:
        problems.append("--quick subsets")
    return problems


def decision_record(results: dict[str, Any], study_file: str, flags: set[str]) -> dict[str, Any]:
    """The committed decision file: the choice, the CPU flags it applies to, and the evidence."""
    names = list(results["precision_study"])
    problems = decision_problems(results["args"]["seeds"], names, results["args"]["quick"])
    if problems:
        raise SystemExit(f"--write-decision: this study has {'; '.join(problems)}")
    evidence = {
        name: {
            variant: {key: row[key] for key in ("speed_ratio", "delta", "low", "high")}
            for variant, row in results["precision_study"][name]["summary"].items()
        }
        for name in names
    }
    return {
        "precision": results["decision"]["precision"],
        "cpu_flags": sorted(flags & set(NATIVE_BF16_FLAGS)),
        "measured_on": {k: results[k] for k in ("date", "host", "cpu", "torch")},
        "study": study_file,
        "rule": RULE,
        "evidence": evidence,
    }


def study_plan(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The variants and workloads `args` ask for; a one-line exit for what the study cannot run."""
    variants = args.study_variants.split(",")
    unknown = [v for v in variants if v == "auto" or v not in get_args(Precision)]
    if unknown or REFERENCE not in variants:
        shown = ", ".join(unknown) or f"no {REFERENCE}"
        raise SystemExit(
            f"--study-variants: {shown}; give variants of train.precision, {REFERENCE} among them"
        )
    names = [name for name in args.workloads.split(",") if name in STUDY_WORKLOADS] or list(STUDY_WORKLOADS)
    problems = decision_problems(args.seeds, names, args.quick) if args.write_decision else []
    if problems:  # before hours of training, not after
        raise SystemExit(f"--write-decision: this study would have {'; '.join(problems)}")
    return variants, names


def same_setup(
    earlier: dict[str, Any], source: str, this: str, args: argparse.Namespace, results: dict[str, Any]
) -> None:
    """Exit with one line unless an earlier results file (`source`: the option and its path) ran on
    this CPU and torch with these seeds, epochs and subsets: its runs pair with this run's only then."""
    for key in ("cpu", "cores", "torch"):
        if earlier.get(key) != results[key]:
            raise SystemExit(f"{source} ran on {key} {earlier.get(key)}, this {this} on {results[key]}")
    given = earlier["args"]
    for key in ("seeds", "epochs", "quick"):
        if given.get(key) != getattr(args, key):
            raise SystemExit(f"{source} has {key} {given.get(key)}, this {this} {getattr(args, key)}")


def load_studies(
    paths: list[str], variants: list[str], args: argparse.Namespace, results: dict[str, Any]
) -> dict[str, Any]:
    """Workloads of earlier studies (`--study-from`) to decide on with this one's: each must have
    trained the same variants with the same seeds, epochs and subsets on the same CPU and torch, or
    the pairing and the speed ratios would not hold."""
    loaded: dict[str, Any] = {}
    for path in paths:
        try:
            earlier = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--study-from: {path}: {exc}") from exc
        if not isinstance(earlier, dict) or not earlier.get("precision_study"):
            raise SystemExit(f"--study-from: {path} holds no precision study")
        same_setup(earlier, f"--study-from: {path}", "study", args, results)
        for name, study in earlier["precision_study"].items():
            if sorted(study["runs"]) != sorted(variants):
                raise SystemExit(
                    f"--study-from: {path}: {name} trained {', '.join(study['runs'])}, "
                    f"this study {', '.join(variants)} (--study-variants)"
                )
            if name in loaded:
                raise SystemExit(f"--study-from: {path}: {name} is in another --study-from file too")
            loaded[name] = {**study, "from": study.get("from", path)}
    return loaded


def run_precision_study(
    results: dict[str, Any],
    specs: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    env: dict[str, str],
    runner: StudyRunner,
    out: Path,
) -> str:
    """Run the study on run.py's `specs`, write its JSON and Markdown beside `out`, return the table."""
    variants, names = study_plan(args)
    loaded = load_studies(args.study_from, variants, args, results)
    cfg = parse_params(yaml.safe_load((REPO / "params.yaml").read_text())).gate.champion
    with reduced_precision_matmuls(cuda=False):
        results["gemm_flops"]["fp32_bf16_matmul"] = gemm_flops(torch.float32)
    results.update(precision_study={}, bootstrap={"resamples": cfg.resamples, "confidence": cfg.confidence})
    named = out.with_name(f"{out.name}-precision-study")
    table = ""
    for name in names:
        if name in loaded:  # trained by an earlier study: summarized again, with this params.yaml's bootstrap
            trained = {key: loaded[name][key] for key in ("rows", "runs", "from")}
        else:
            trained = train_variants(specs[name], args, env, runner, variants)
        results["precision_study"][name] = {**trained, "summary": summarize(trained, cfg)}
        summaries = {n: study["summary"] for n, study in results["precision_study"].items()}
        results["decision"] = decide(summaries)
        named.with_suffix(".json").write_text(json.dumps(results, indent=2))  # each workload as it ends
        named.with_suffix(".md").write_text(table := study_table(results))
    if args.write_decision:
        record = decision_record(results, str(named.with_suffix(".json").relative_to(REPO)), cpu_flags())
        DECISION_FILE.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        table += f"\nWritten to {DECISION_NAME}: `auto` on this CPU trains in {record['precision']}.\n"
    return table
