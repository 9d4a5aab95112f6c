"""What fine-tuning SmolLM2-135M-Instruct on BANKING77 buys (not run in CI).

Exact match on ONE stratified sample of the BANKING77 test split for (a) the base model
zero-shot with the intent list in the prompt, (b) the default SFT run (`params-sft.yaml`,
LoRA), (c) a MiniLM classifier (the default job, `params.yaml`); plus the SFT run's wall time,
training tokens/s and their share of the machine's fp32 GEMM peak.

The sample is the SFT run's own generated rows (`data.max_test_samples: 770` of params-sft.yaml:
10 per intent, stratified), so (b) is that run's evaluate step and (a) and (c) answer exactly
those rows. Every run goes into a scratch directory with its own MLflow store and caches.

    python benchmarks/smollm2_sft.py                      # the full measurement: hours on 2 CPU cores
    python benchmarks/smollm2_sft.py --set data.max_train_samples=770 --set data.max_test_samples=77 \
        --zero-shot-limit 20 --classifier runs/<run>/artifacts/model     # a reduced one
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measures import gemm_flops
from benchmarks.sft_bench import lora_flops_per_token
from benchmarks.smollm2_zero_shot import build_prompt, generate_answers, score
from tasks.core.layout import RunLayout
from tasks.models.base_models import resolve_base_model
from tasks.tokenization.cache import load_tokenized

REPO = Path(__file__).resolve().parent.parent
INTENTS: list[str] = json.loads((REPO / "data" / "banking77" / "categories.json").read_text())


def refinery_run(params: str, overrides: list[str], work: Path, name: str) -> tuple[RunLayout, float]:
    """`refinery run` on `params` with its stores and caches in `work`; the run and its wall seconds."""
    scratch = [
        f"register.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        f"tokenize.cache_dir={work / 'cache' / 'tokenized'}",
        f"train.checkpoint_dir={work / 'cache' / 'checkpoints'}",
        "train.progress_bars=false",
    ]
    command = [
        sys.executable,
        "-m",
        "tasks.cli.main",
        "run",
        "--params",
        params,
        "--workdir",
        str(work / name),
    ]
    for item in [*scratch, *overrides]:
        command += ["--set", item]
    started = time.monotonic()
    subprocess.run(command, cwd=REPO, check=True)
    return RunLayout(work / name), time.monotonic() - started


def training_speed(layout: RunLayout, model_dir: Path) -> dict[str, float]:
    """Training tokens/s (real tokens, not padding) and the model FLOP/s it implies.

    LoRA training FLOPs per token: `benchmarks.sft_bench.lora_flops_per_token`.
    """
    summary = json.loads(layout.train_metrics.read_text())
    train = load_tokenized(layout)["train"]
    tokens = sum(len(ids) for ids in train["input_ids"]) * float(summary.get("epochs_completed", 1.0))
    seconds = float(summary["train_runtime_s"])
    flops = lora_flops_per_token(json.loads((model_dir / "config.json").read_text())) * tokens / seconds
    return {"train_tokens": tokens, "train_seconds": seconds, "tokens_per_second": tokens / seconds,
            "model_flops_per_second": flops}  # fmt: skip


def zero_shot(rows: pd.DataFrame, batch_size: int) -> dict[str, Any]:
    """(a): the base model asked each row's message with the intent list, greedy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_base_model("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    started = time.monotonic()
    answers = generate_answers(
        model, tokenizer, [build_prompt(t, INTENTS) for t in rows["text"]], batch_size, 12
    )
    result = score(answers, rows["reference"].tolist(), INTENTS)
    return {**result, "seconds_per_prompt": round((time.monotonic() - started) / len(rows), 2)}


def classifier(model_dir: Path, rows: pd.DataFrame) -> dict[str, Any]:
    """(c): a trained sequence classifier's top label for each row's message."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    predicted: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            batch = tokenizer(rows["text"].iloc[start : start + 64].tolist(), padding=True, truncation=True,
                              return_tensors="pt")  # fmt: skip
            predicted += [model.config.id2label[int(i)] for i in model(**batch).logits.argmax(-1)]
    right = sum(p == r for p, r in zip(predicted, rows["reference"], strict=True))
    return {"n": len(rows), "exact_match": right / len(rows), "correct": right, "model_dir": str(model_dir)}


def sampled_rows(layout: RunLayout) -> pd.DataFrame:
    """The rows the SFT run generated on, with each message's text (for (a) and (c))."""
    generations = pd.read_csv(layout.generations_csv, keep_default_na=False, dtype={"output": str})
    test_csv = (REPO / "data" / "banking77" / "test.csv").resolve()
    text = {row + 1: t for row, t in enumerate(pd.read_csv(test_csv)["text"])}  # source_row counts from 1
    files = {(REPO / name).resolve() for name in generations["source_file"]}
    if files != {test_csv} or not set(generations["source_row"]) <= set(text):
        raise SystemExit(f"the SFT run's generations are not rows of {test_csv}: {sorted(map(str, files))}")
    return generations.assign(text=[text[r] for r in generations["source_row"]])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="SFT run override")
    parser.add_argument(
        "--zero-shot-limit",
        type=int,
        default=None,
        help="(a) on N rows only, the same number per intent; 0: skip (a) (rows in WORK/sampled_rows.csv)",
    )
    parser.add_argument("--classifier", type=Path, default=None, help="(c) a trained classifier's model dir")
    parser.add_argument("--train-classifier", action="store_true", help="(c) run the default job first")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch directory (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: benchmarks/results/)")
    return parser.parse_args()


def per_intent(rows: pd.DataFrame, limit: int) -> pd.DataFrame:
    """About `limit` of `rows`, the first ones of each intent in turn (the sample stays stratified)."""
    per = max(1, limit // max(1, rows["reference"].nunique()))
    return rows.groupby("reference", sort=False, group_keys=False).head(per).head(limit)


def main() -> None:
    args = parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="refinery-smollm2-sft-"))
    peak = gemm_flops(torch.float32)
    layout, wall = refinery_run("params-sft.yaml", args.overrides, work, "sft")
    metrics = json.loads(layout.eval_metrics.read_text())
    speed = training_speed(layout, resolve_base_model("smollm2-135m"))
    rows = sampled_rows(layout)
    share = speed["model_flops_per_second"] / peak
    results: dict[str, Any] = {
        "sample": {"rows": len(rows), "per_intent": rows["reference"].value_counts().describe().to_dict()},
        "b_sft": {k: metrics[k] for k in ("exact_match", "not_a_label", "n_not_a_label", "n_generated")},
        "sft_run_wall_seconds": round(wall, 1),
        "training": {**speed, "gemm_fp32_peak_flops": peak, "share_of_gemm_peak": share},
        "sft_overrides": args.overrides,
    }
    rows[["text", "reference"]].to_csv(work / "sampled_rows.csv", index=False)  # (a) elsewhere: same rows
    if args.zero_shot_limit != 0:  # 0: (a) is measured elsewhere (e.g. on a GPU) on sampled_rows.csv
        limited = rows if args.zero_shot_limit is None else per_intent(rows, args.zero_shot_limit)
        answered = zero_shot(limited, 8)
        results["a_zero_shot"] = {k: v for k, v in answered.items() if k != "most_common_answers"}
        results["a_zero_shot"]["rows"] = len(limited)
    classifier_dir = args.classifier
    if args.train_classifier:
        classifier_dir = refinery_run("params.yaml", [], work, "classifier")[0].model_dir
    if classifier_dir is not None:
        results["c_classifier"] = classifier(classifier_dir, rows)
    results |= {"host": platform.node(), "torch_threads": torch.get_num_threads(), "work": str(work)}
    print(json.dumps(results, indent=2, default=str))
    out = args.out or REPO / "benchmarks" / "results" / f"smollm2-sft-{date.today()}-{platform.node()}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
