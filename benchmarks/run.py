"""Refinery against the plain Trainer script, side by side, in one invocation.

For each workload the two are run alternately `--repeats` times (each in its own process, so
peak RSS is per run) on exactly the same training and test examples: the plain script gets the
train split Refinery carves (validation held out) as its training file. Repeat i trains both
with seed 42 + i, so the accuracy medians and ranges show seed variance rather than one draw.
Reported: medians and ratios of wall time, training samples/s, non-padding tokens/s, peak RSS,
test accuracy, and utilisation = useful training FLOP/s over the machine's dense GEMM FLOP/s
measured in the same invocation; Refinery's tokenization throughput; the cached re-runs
(`refinery run` again with the same inputs, and `dvc repro` with nothing changed). Results go to
`benchmarks/results/<date>-<host>.json` and `.md`. The `sweep` workload (benchmarks/sweep.py)
compares a sweep with the median pruner and one without, and its winner with the defaults.
`predict` (benchmarks/predict_bench.py) times `refinery predict` against a plain text-classification
pipeline; `sft` (benchmarks/sft_bench.py) the causal-LM job against a plain TRL SFTTrainer script.
`--precision-study` (benchmarks/precision_study.py) trains each `train.precision` variant on the
same examples and seeds instead, and decides what `train.precision: auto` takes on this CPU;
`--ablation` (benchmarks/ablation.py) switches Refinery's defaults off one at a time against the
plain script, over seeds, to find which of them costs accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, get_args

import torch
import yaml
from datasets import load_from_disk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ablation import ARMS, AblationRunner, run_ablation
from benchmarks.distributed import distributed_table, run_distributed
from benchmarks.measures import (
    BIN,
    REPO,
    dvc_rerun,
    gemm_flops,
    measured,
    model_flops_per_token,
    tokenization_rate,
)
from benchmarks.precision_study import DECISION_NAME, VARIANTS, StudyRunner, run_precision_study
from benchmarks.predict_bench import PredictSetup, add_predict_arguments, predict_table, run_predict_workload
from benchmarks.report import report
from benchmarks.sft_bench import SftSetup, add_sft_arguments, run_sft_workload, sft_table
from benchmarks.sweep import SweepSetup, run_sweep_workload, sweep_table
from tasks.core.config import Params, Precision, parse_params
from tasks.data.reading import read_frames
from tasks.data.splitting import Splits
from tasks.models.base_models import resolve_base_model
from tasks.task_types.classification.records import split_frames

SHARED = REPO.parent / "shared" / "datasets"


def workloads(quick: bool) -> dict[str, dict[str, Any]]:
    return {
        "banking77": {
            "train": "data/banking77/train.csv",
            "test": "data/banking77/test.csv",
            "label": "category",
            "format": "csv",
            "max_train": 2000 if quick else None,
        },
        "sst2": {
            "train": str(SHARED / "sst2" / "train.tsv"),
            "test": str(SHARED / "sst2" / "dev.tsv"),
            "label": "label",
            "format": "tsv",
            "max_train": 500 if quick else 4000,  # a fixed subset: SST-2 in full takes an hour here
        },
        "emotion": {  # six emotions of English tweets (../shared/datasets/SOURCES.md); `text;label_name`
            "train": str(SHARED / "emotion" / "train.txt"),
            "test": str(SHARED / "emotion" / "test.txt"),
            "label": "label_name",
            "format": "csv",
            "delimiter": ";",
            "max_train": 500 if quick else 4000,
        },
    }


def refinery_params(
    work: Path, spec: dict[str, Any], args: argparse.Namespace, cache_root: Path, seed: int = 42
) -> dict[str, Any]:
    """params.yaml of the default job, pointed at a workload, with fresh caches (a first run)."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(  # absolute: the rows' source_file then matches the plain script's (split_files)
        train_path=str(REPO / spec["train"]),
        test_path=str(REPO / spec["test"]),
        label_column=spec["label"],
        labels_path=None,
        format=spec["format"],
        csv_delimiter=spec.get("delimiter"),
        max_train_samples=spec["max_train"],
    )
    # SST-2's public files repeat some sentences: tolerated here, as BANKING77's are by default
    raw["validate"].update(max_duplicate_fraction=0.05, allow_leakage=True, min_examples_per_class=2)
    raw["tokenize"]["cache_dir"] = str(cache_root / "tokenized")
    raw["train"].update(
        epochs=args.epochs,
        seed=seed,
        checkpoint_dir=str(cache_root / "checkpoints"),
        progress_bars=False,
        **({"precision": args.precision} if args.precision else {}),
    )
    raw["gate"]["thresholds"] = {}
    raw["register"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name="bench")
    return raw


def plain_files(splits: Splits, work: Path) -> tuple[Path, Path]:
    """Refinery's train and test splits as CSV files for the plain script: the very same examples."""
    paths = (work / "plain_train.csv", work / "plain_test.csv")
    for frame, path in zip((splits.train, splits.test), paths, strict=True):  # the script reads text, label
        frame[["text", "label", "source_file", "source_row"]].to_csv(path, index=False)
    return paths


def run_plain(
    work: Path,
    files: tuple[Path, Path],
    model: Path,
    epochs: float,
    seed: int,
    env: dict[str, str],
    predictions: Path | None = None,
) -> dict:
    """The plain script on `files`; `predictions`: where it writes each test row's answer."""
    command = [sys.executable, "benchmarks/plain_trainer.py", "--train", str(files[0]), "--test"]
    command += [str(files[1]), "--label-column", "label", "--model", str(model), "--epochs", str(epochs)]
    command += ["--seed", str(seed), *(["--predictions", str(predictions)] if predictions else [])]
    wall, rss, out = measured([*command, "--output-dir", str(work / "plain")], env)
    plain = json.loads(out.strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "samples_per_s": plain["train_samples_per_second"],
        "tokens_per_s": plain["train_tokens_per_epoch"] * epochs / plain["train_runtime_s"],
        "tokens_per_epoch": plain["train_tokens_per_epoch"],
        "mean_tokens": plain["train_tokens_per_epoch"] / plain["train_examples"],
        "peak_rss_mb": rss,
        "accuracy": plain["test_accuracy"],
    }


def split_files(work: Path, spec: dict[str, Any], args: argparse.Namespace) -> tuple[Path, Path]:
    """The train and test splits Refinery carves from `spec` (data.seed's split, whatever the training
    seed), written as the plain script's CSV files in `work`."""
    raw = refinery_params(work, spec, args, work / "cache")
    params: Params = parse_params(raw, "bench params")
    return plain_files(split_frames(read_frames(params.data, REPO), params.data, REPO), work)


def ablation_runner(args: argparse.Namespace) -> AblationRunner:
    """run.py's machinery for the ablation: the plain script on MiniLM for `args.epochs`."""
    model = resolve_base_model("minilm")

    def plain(
        work: Path, files: tuple[Path, Path], seed: int, env: dict[str, str], predictions: Path
    ) -> dict[str, Any]:
        return run_plain(work, files, model, args.epochs, seed, env, predictions)

    return AblationRunner(refinery_params, run_refinery, plain, split_files)


def run_refinery(run_dir: Path, params_path: Path, env: dict[str, str]) -> dict:
    command = [str(BIN / "refinery"), "run", "--params", str(params_path), "--workdir", str(run_dir)]
    wall, rss, _ = measured(command, env)
    train = json.loads((run_dir / "train" / "metrics.json").read_text())
    test = json.loads((run_dir / "eval" / "metrics.json").read_text())
    # the non-padding tokens Refinery trained on (after its truncation), times the epochs it ran
    tokenized = load_from_disk(str(run_dir / "tokenized"))["train"]
    useful_tokens = sum(len(ids) for ids in tokenized["input_ids"]) * train["epochs_completed"]
    return {
        "wall_s": wall,
        "samples_per_s": train["train_samples_per_second"],
        "tokens_per_s": useful_tokens / max(train["train_runtime_s"], 1e-9),
        "peak_rss_mb": rss,
        "accuracy": test["accuracy"],
        "reused_training": float(bool(train.get("reused", False))),
    }


def run_workload(
    name: str, spec: dict[str, Any], args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    model = resolve_base_model("minilm")
    rows: dict[str, list[dict[str, float]]] = {"plain": [], "refinery": [], "refinery_rerun": []}
    result: dict[str, Any] = {}
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            work = Path(tmp)
            seed = 42 + i
            raw = refinery_params(work, spec, args, work / "cache", seed)
            params: Params = parse_params(raw, "bench params")
            params_path = work / "params.yaml"
            params_path.write_text(yaml.safe_dump(raw))
            splits = split_frames(read_frames(params.data, REPO), params.data, REPO)
            if i == 0:
                result["examples"] = {k: len(v) for k, v in splits.frames().items()}
                result["tokenization_examples_per_s"] = tokenization_rate(splits, model, params)
            files = plain_files(splits, work)
            # alternate which goes first, so neither always meets a warm page cache
            order = ["plain", "refinery"] if i % 2 == 0 else ["refinery", "plain"]
            for who in order:
                if who == "plain":
                    rows["plain"].append(run_plain(work, files, model, args.epochs, seed, env))
                    continue
                rows["refinery"].append(run_refinery(work / "refinery", params_path, env))
                trained = json.loads((work / "refinery" / "train" / "metrics.json").read_text())
                result.setdefault("refinery_precision", trained.get("precision"))  # `auto` resolved
                rows["refinery_rerun"].append(run_refinery(work / "rerun", params_path, env))
            if i == 0 and args.dvc and name == "banking77":
                dvc_raw = refinery_params(work, spec, args, Path(".cache/refinery"))
                result["dvc_repro"] = dvc_rerun(work, yaml.safe_dump(dvc_raw), env)
        print(f"[{name}] repeat {i + 1}/{args.repeats} done", file=sys.stderr)
    median = {k: {m: statistics.median(float(r[m]) for r in v) for m in v[0]} for k, v in rows.items()}
    result.update(runs=rows, median=median)
    result["flops_per_token"] = model_flops_per_token(model, median["plain"]["mean_tokens"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=3, help="as params.yaml's train.epochs")
    parser.add_argument(
        "--workloads",
        default="banking77,sst2,distributed",
        help="of banking77, sst2, emotion, distributed, sweep, predict, sft",
    )
    parser.add_argument(
        "--precision", choices=get_args(Precision), default=None, help="Refinery's train.precision"
    )
    parser.add_argument(
        "--precision-study",
        action="store_true",
        help="train.precision variants on banking77 and sst2, --seeds each (benchmarks/precision_study.py)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=5,
        help="precision study and ablation: seeds 42, 43, ... per variant or arm",
    )
    parser.add_argument("--study-variants", default=",".join(VARIANTS), help="precision study: variants")
    parser.add_argument(
        "--write-decision", action="store_true", help=f"precision study: store its choice as {DECISION_NAME}"
    )
    parser.add_argument(
        "--study-from",
        action="append",
        default=[],
        metavar="FILE",
        help="precision study: take the workloads this earlier study's JSON trained (repeatable)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="switch Refinery's defaults off one at a time against the plain script, --seeds each "
        "(benchmarks/ablation.py)",
    )
    parser.add_argument("--ablation-arms", default=",".join(ARMS), help="ablation: arms")
    parser.add_argument(
        "--plain-from",
        default=None,
        metavar="FILE",
        help="ablation: the plain script's runs from an earlier ablation's JSON (same seeds, epochs, CPU)",
    )
    parser.add_argument("--no-dvc", dest="dvc", action="store_false", help="skip the dvc repro re-run")
    parser.add_argument("--quick", action="store_true", help="small subsets: checks the harness, not speed")
    parser.add_argument("--sweep-dataset", choices=["banking77", "sst2", "emotion"], default="banking77")
    parser.add_argument("--sweep-train-samples", type=int, default=None, help="sweep on N training rows")
    parser.add_argument("--sweep-trials", type=int, default=12, help="trials of each sweep")
    parser.add_argument("--sweep-pruners", default="median,none", help="one sweep per pruner, in order")
    add_predict_arguments(parser)
    add_sft_arguments(parser)
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
    env.pop("MLFLOW_TRACKING_URI", None)
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "host": platform.node(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "args": vars(args),
        "gemm_flops": {"fp32": gemm_flops(torch.float32), "bf16": gemm_flops(torch.bfloat16)},
        "workloads": {},
    }
    out = REPO / "benchmarks" / "results" / f"{results['date']}-{results['host']}{'-quick' * args.quick}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.precision_study:  # its own files: the variants against each other, not against the plain script
        specs = workloads(args.quick)
        print(run_precision_study(results, specs, args, env, StudyRunner(refinery_params, run_refinery), out))
        return
    if args.ablation:  # its own files: Refinery's defaults switched off, each against the plain script
        print(run_ablation(results, workloads(args.quick), args, env, ablation_runner(args), out))
        return
    names = args.workloads.split(",")
    if set(names) <= {"predict", "sft"}:  # alone, in their own files (as the sweep): no classification table
        out = out.with_name(f"{out.name}-{'-'.join(names)}")
    table = ""
    if "sweep" in names:  # its own files: pruned vs unpruned sweeps, not Refinery vs the plain script
        setup = SweepSetup(
            args.sweep_dataset,
            args.sweep_train_samples,
            args.sweep_trials,
            tuple(args.sweep_pruners.split(",")),
        )
        spec = workloads(args.quick)[setup.dataset]
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            sweep = run_sweep_workload(Path(tmp), args.quick, env, setup, spec)
        rows = f"-{setup.train_samples}rows" if setup.train_samples else ""  # one file per setup
        named = out.with_name(f"{out.name}-sweep-{setup.dataset}{rows}")
        named.with_suffix(".json").write_text(json.dumps({**results, "sweep": sweep}, indent=2))
        named.with_suffix(".md").write_text(table := sweep_table(sweep))
    for name in (n for n in names if n != "sweep"):
        if name == "distributed":  # BANKING77 under each launcher (benchmarks/distributed.py)
            results["distributed"] = run_distributed(
                refinery_params, workloads(args.quick)["banking77"], args, env
            )
        elif name in ("predict", "sft"):  # their own tables: benchmarks/predict_bench.py, sft_bench.py
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                results[name] = (
                    run_predict_workload(Path(tmp), PredictSetup.from_args(args), env)
                    if name == "predict"
                    else run_sft_workload(Path(tmp), SftSetup.from_args(args), env, results["gemm_flops"])
                )
        else:
            results["workloads"][name] = run_workload(name, workloads(args.quick)[name], args, env)
        out.with_suffix(".json").write_text(json.dumps(results, indent=2))  # each workload as it ends
        table = report(results) if results["workloads"] else ""
        table += distributed_table(results["distributed"]) if "distributed" in results else ""
        table += predict_table(results["predict"]) if "predict" in results else ""
        table += sft_table(results["sft"]) if "sft" in results else ""
        out.with_suffix(".md").write_text(table)
    print(table)


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
