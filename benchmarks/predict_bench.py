"""The `predict` workload of `make bench`: `refinery predict` against a plain text-classification pipeline.

The same trained classifier scores the same texts with the same batch size and threads, two ways, in
one process: Refinery's scoring (`tasks.cli.prediction.predict_frame`, what `refinery predict` runs
between reading the input and writing the output: rows in token-length order, the registered model's
pipeline per batch) and the plain way, `transformers.pipeline("text-classification", model=DIR)`
called on the texts in file order with `batch_size`. They score every text alternately `--repeats`
times; medians of texts/s and their ratio are reported, with the labels' agreement and the tokens each
order pads to (the ratio's bound when the forward passes dominate). The text sets: BANKING77's test
texts and SST-2's labelled test sentences (`../shared/datasets/sst2/dev.tsv`, read in place: longer).
Each `refinery predict` command is also timed once end to end (start, model load, file written).

The model: `--predict-model DIR`, a run's `model/` directory (`runs/<run>/model`), logged into a
scratch MLflow store as the register step logs a classifier; else a short `refinery run` of the default
job (BANKING77, `--predict-train-samples` rows, 1 epoch) trains and registers one first.
`--quick` scores a seeded sample of 600 texts of each set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmarks.measures import BIN, REPO, measured

SHARED = REPO.parent / "shared" / "datasets"
TEXT_SETS = {  # name: (file, separator), each with a `text` column
    "banking77": (REPO / "data" / "banking77" / "test.csv", ","),
    "sst2": (SHARED / "sst2" / "dev.tsv", "\t"),
}
QUICK_TEXTS = 600


@dataclass(frozen=True)
class PredictSetup:
    """What the predict workload scores with: a run's model directory (or None: train one), sizes."""

    model_dir: Path | None = None
    batch_size: int = 64
    repeats: int = 3
    train_samples: int = 1000
    quick: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PredictSetup:
        model = Path(args.predict_model) if args.predict_model else None
        return cls(model, args.predict_batch_size, args.repeats,
                   300 if args.quick else args.predict_train_samples, args.quick)  # fmt: skip


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The predict workload's options of benchmarks/run.py."""
    model_help = "predict: a run's model directory (runs/<run>/model); default: a short run trains one"
    parser.add_argument("--predict-model", default=None, help=model_help)
    parser.add_argument("--predict-batch-size", type=int, default=64, help="predict: texts per batch")
    rows_help = "predict: BANKING77 rows of the short run that trains the model"
    parser.add_argument("--predict-train-samples", type=int, default=1000, help=rows_help)


def padded_tokens(lengths: np.ndarray, order: np.ndarray, batch_size: int) -> int:
    """Tokens the forward passes see when rows go in `order`, `batch_size` at a time, each batch
    padded to its longest row."""
    ordered = np.asarray(lengths)[order]
    return int(sum(ordered[i : i + batch_size].max() * len(ordered[i : i + batch_size])
                   for i in range(0, len(ordered), batch_size)))  # fmt: skip


def padding_profile(lengths: np.ndarray, chars: np.ndarray, batch_size: int) -> dict[str, float]:
    """Real tokens, and the tokens batches pad to in file order (the plain pipeline), in token order
    (Refinery) and in character order (Refinery before it counted tokens); file order over token order
    bounds the speed-up that ordering alone gives."""
    lengths = np.asarray(lengths)
    real = int(lengths.sum())
    in_file = padded_tokens(lengths, np.arange(len(lengths)), batch_size)
    in_tokens = padded_tokens(lengths, np.argsort(-lengths, kind="stable"), batch_size)
    in_chars = padded_tokens(lengths, np.argsort(-np.asarray(chars), kind="stable"), batch_size)
    return {
        "real_tokens": real,
        "mean_tokens": real / max(len(lengths), 1),
        "padded_file_order": in_file,
        "padded_token_order": in_tokens,
        "padded_character_order": in_chars,
        "padding_bound": in_file / max(in_tokens, 1),
    }


def read_texts(name: str, quick: bool) -> list[str]:
    """The texts of a set; a seeded sample of QUICK_TEXTS when quick (file order kept)."""
    path, sep = TEXT_SETS[name]
    texts = pd.read_csv(path, sep=sep, keep_default_na=False)["text"].astype(str)
    if quick and len(texts) > QUICK_TEXTS:
        texts = texts.sample(n=QUICK_TEXTS, random_state=0).sort_index()
    return texts.tolist()


def train_classifier(work: Path, setup: PredictSetup, env: dict[str, str]) -> tuple[str, Path]:
    """A short `refinery run` of the default job; its registered model URI and model directory."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(
        train_path=str(REPO / raw["data"]["train_path"]), test_path=str(REPO / raw["data"]["test_path"]),
        labels_path=None, max_train_samples=setup.train_samples,
    )  # fmt: skip
    raw["tokenize"]["cache_dir"] = str(work / "cache" / "tokenized")
    raw["train"].update(epochs=1, checkpoint_dir=str(work / "cache" / "checkpoints"), progress_bars=False)
    raw["gate"]["thresholds"] = {}
    raw["register"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name="bench-predict")
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    command = [str(BIN / "refinery"), "run", "--params", str(work / "params.yaml")]
    measured([*command, "--workdir", str(work / "run")], env, cwd=work)  # MLflow's ./mlruns: in work
    registration = json.loads((work / "run" / "registration.json").read_text())
    return str(registration["model_uri"]), work / "run" / "model"


def logged_classifier(work: Path, model_dir: Path, examples: list[str]) -> str:
    """`model_dir` (a run's model/) logged into the scratch store as the register step logs it."""
    import mlflow

    from tasks.core.layout import RunLayout
    from tasks.task_types.classification.packaging import log_model

    if model_dir.name != "model" or not (model_dir / "config.json").is_file():
        raise SystemExit(f"--predict-model: {model_dir} is not a run's model directory (runs/<run>/model)")
    experiment = mlflow.create_experiment("bench-predict", artifact_location=(work / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        return str(log_model(RunLayout(model_dir.parent), "Refinery benchmark copy", examples[:3]).model_uri)


def _timed(score: Any, count: int) -> float:
    start = time.perf_counter()
    score()
    return count / (time.perf_counter() - start)


def measure_set(scorer: Any, pipe: Any, texts: list[str], setup: PredictSetup) -> dict[str, Any]:
    """The scorers on `texts`, in turn `setup.repeats` times: texts/s medians, agreement. Besides
    Refinery and the plain pipeline, Refinery ordering rows by characters (as before it counted
    tokens), to show what the token order adds."""
    from tasks.cli.prediction import predict_frame, row_lengths

    frame = pd.DataFrame({"text": texts})
    answers: dict[str, list[str]] = {}

    def refinery(name: str, ordered: Any) -> None:
        answers[name] = predict_frame(ordered, frame, "text", setup.batch_size, False)["label"].tolist()

    def plain() -> None:
        found = pipe(texts, batch_size=setup.batch_size, truncation=True)
        answers["plain"] = [str(o["label"]) for o in found]

    scorers = {
        "plain": plain,
        "refinery": lambda: refinery("refinery", scorer),
        "refinery_character_order": lambda: refinery(
            "refinery_character_order", replace(scorer, lengths=None)
        ),
    }
    runs: dict[str, list[float]] = {name: [] for name in scorers}
    for i in range(setup.repeats):
        names = list(scorers) if i % 2 == 0 else list(reversed(scorers))  # neither always meets warm caches
        for name in names:
            runs[name].append(_timed(scorers[name], len(texts)))
    same = sum(a == b for a, b in zip(answers["refinery"], answers["plain"], strict=True))
    median = {name: statistics.median(rates) for name, rates in runs.items()}
    return {
        "texts": len(texts),
        "runs": runs,
        "texts_per_s": median,
        "ratio": median["refinery"] / median["plain"],
        "label_agreement": same / max(len(texts), 1),
        "padding": padding_profile(
            row_lengths(scorer, frame), frame["text"].str.len().to_numpy(), setup.batch_size
        ),
    }


def command_rate(work: Path, name: str, texts: list[str], uri: str, tracking: str, setup: PredictSetup,
                 env: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """`refinery predict` end to end on the texts (a file of them alone): wall and texts/s."""
    source = work / f"{name}.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    command = [str(BIN / "refinery"), "predict", "--model", uri, "--input", str(source), "--output",
               str(work / f"{name}-scored.csv"), "--batch-size", str(setup.batch_size), "--tracking-uri",
               tracking]  # fmt: skip
    wall, rss, _ = measured(command, env, cwd=work)
    return {"wall_s": wall, "texts_per_s": len(texts) / wall, "peak_rss_mb": rss}


def run_predict_workload(work: Path, setup: PredictSetup, env: dict[str, str]) -> dict[str, Any]:
    """Each text set scored both ways with the same model, batch size and threads."""
    import torch
    from transformers import pipeline

    from tasks.cli.prediction import load_scorer
    from tasks.registry.tracking import tracking_to

    tracking = f"sqlite:///{work / 'mlflow.db'}"
    texts = {name: read_texts(name, setup.quick) for name in TEXT_SETS}
    if setup.model_dir is None:
        uri, model_dir = train_classifier(work, setup, env)
    else:
        model_dir = setup.model_dir.resolve()
        with tracking_to(tracking):
            uri = logged_classifier(work, model_dir, texts["banking77"])
    with tracking_to(tracking):
        scorer = load_scorer(uri)
    pipe = pipeline("text-classification", model=str(model_dir), device=torch.device("cpu"))
    result: dict[str, Any] = {
        "model_dir": str(model_dir),
        "trained_here": setup.model_dir is None,
        "batch_size": setup.batch_size,
        "repeats": setup.repeats,
        "threads": torch.get_num_threads(),
        "sets": {},
    }
    for name, rows in texts.items():
        result["sets"][name] = measure_set(scorer, pipe, rows, setup)
        result["sets"][name]["command"] = command_rate(work, name, rows, uri, tracking, setup, env)
        print(f"[predict] {name}: {result['sets'][name]['ratio']:.2f}x", file=sys.stderr)
    return result


def predict_table(result: dict[str, Any]) -> str:
    """The README table of the predict workload: one row per text set."""
    lines = [
        f"## predict: `refinery predict` vs `transformers.pipeline` (batch {result['batch_size']}, "
        f"{result['threads']} threads, median of {result['repeats']})",
        "",
        "| texts | n | mean tokens | plain texts/s | Refinery texts/s | ratio | Refinery, character order "
        "| padded / real tokens: file, token, character order | labels agree | `refinery predict` command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, found in result["sets"].items():
        pad, command, rate = found["padding"], found["command"], found["texts_per_s"]
        padded = [pad[f"padded_{o}_order"] / pad["real_tokens"] for o in ("file", "token", "character")]
        lines.append(
            f"| {name} | {found['texts']} | {pad['mean_tokens']:.1f} | {rate['plain']:.0f} | "
            f"{rate['refinery']:.0f} | {found['ratio']:.2f} | {rate['refinery_character_order']:.0f} "
            f"({rate['refinery_character_order'] / rate['plain']:.2f}) | "
            + ", ".join(f"{v:.2f}" for v in padded)
            + f" | {found['label_agreement']:.2%} | {command['wall_s']:.1f} s"
            + f" ({command['texts_per_s']:.0f}/s) |"
        )
    return "\n".join([*lines, ""]) + "\n"
