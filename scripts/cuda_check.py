"""Check the CUDA paths of training on a GPU machine: one GPU, NCCL, FSDP, DeepSpeed (not run in CI).

CI has no GPU, so the CUDA branches of `train.distributed` and `train.precision` are checked here,
on the real train step (`python -m tasks.steps.training`, as DVC runs it), with tiny models:

    python scripts/cuda_check.py prepare /tmp/refinery-cuda   # where validate/tokenize can run (CPU)
    python scripts/cuda_check.py check /tmp/refinery-cuda --out cuda-check.json   # on the GPU machine

`prepare` builds a tiny BERT classifier and a tiny Llama, samples BANKING77, writes one params file
per case and runs the validate and tokenize steps, all under ROOT with absolute paths: copy ROOT to
the same path on the GPU machine. `check` needs only the training dependencies there (torch,
transformers, peft, trl, datasets, accelerate; deepspeed for its case): no MLflow, Prefect or Great
Expectations. Each case passes when the step exits 0, the loss falls, rank 0 saved one model, and
the summary names the expected precision, world size, launcher and strategy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEEPSPEED_CONFIG = REPO / "infra" / "deepspeed" / "zero2.json"
CLASSES = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"]
ONE_GPU = {"launcher": "torchrun", "processes": 1}
# case -> (task, train.distributed, extra train params)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "classifier-single-gpu": ("sequence_classification", {}, {}),
    "classifier-torchrun-ddp-nccl": ("sequence_classification", ONE_GPU, {}),
    "classifier-torchrun-fsdp": ("sequence_classification", {**ONE_GPU, "strategy": "fsdp"}, {}),
    "classifier-torchrun-deepspeed": (
        "sequence_classification",
        {**ONE_GPU, "strategy": "deepspeed", "deepspeed_config": str(DEEPSPEED_CONFIG)},
        {},
    ),
    # train.precision variants beside auto's bf16 autocast (the summary must name the one asked for)
    "classifier-bf16-linear": ("sequence_classification", {}, {"precision": "bf16_linear"}),
    "classifier-fp32-bf16-matmul": ("sequence_classification", {}, {"precision": "fp32_bf16_matmul"}),
    "sft-lora-single-gpu": ("causal_lm", {}, {"lora": {"enabled": True}}),
    "sft-lora-bf16-linear": ("causal_lm", {}, {"lora": {"enabled": True}, "precision": "bf16_linear"}),
    # FSDP with LoRA is refused by the params (rank 0 could not save the merged model); a full fine-tune
    "sft-full-torchrun-fsdp": ("causal_lm", {**ONE_GPU, "strategy": "fsdp"}, {}),
    "sft-full-torchrun-deepspeed": (
        "causal_lm",
        {**ONE_GPU, "strategy": "deepspeed", "deepspeed_config": str(DEEPSPEED_CONFIG)},
        {},
    ),
}


def case_params(root: Path, name: str, models: dict[str, Path], data: Path) -> Path:
    """The params file of case `name`: a few dozen steps of a tiny model, everything under `root`."""
    task, distributed, extra = CASES[name]
    raw: dict[str, Any] = {
        "task": task,
        "data": {
            "name": "banking77-sample",
            "train_path": str(data),
            "test_path": None,
            "text_column": "text",
            "label_column": "category",
        },
        "validate": {"min_examples_per_class": 5},
        "tokenize": {"cache_dir": str(root / "cache" / "tokenized")},
        "train": {
            "base_model": str(models[task]),
            "learning_rate": 2e-2 if task == "sequence_classification" else 1e-2,
            "batch_size": 16,
            "epochs": 3,
            "early_stopping_patience": None,
            "checkpoint_dir": str(root / "cache" / "checkpoints" / name),
            "logging_steps": 2,
            "progress_bars": False,
            "precision": "auto",
            "distributed": distributed,
            **extra,
        },
        "register": {"model_name": f"cuda-check-{name}", "tracking_uri": f"sqlite:///{root / 'mlflow.db'}"},
    }
    if task == "causal_lm":
        raw["sft"] = {"from_classification": True}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def prepare(root: Path) -> None:
    """Tiny models, a BANKING77 sample, and each case's validated and tokenized run under `root`."""
    import pandas as pd

    from scripts.make_tiny_causal_lm import build_tiny_causal_lm
    from tasks.core.layout import RunLayout
    from tasks.steps import tokenization, validation
    from tasks.task_types import load_task_params
    from tests.fixtures import build_tiny_classifier

    root.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(REPO / "data" / "banking77" / "train.csv")
    frame = frame[frame["category"].isin(CLASSES)].groupby("category", group_keys=False).head(40)
    data = root / "sample.csv"
    frame.to_csv(data, index=False)
    models = {
        "sequence_classification": build_tiny_classifier(root / "tiny-bert", CLASSES),
        "causal_lm": build_tiny_causal_lm(root / "tiny-llama", [*frame["text"], *CLASSES]),
    }
    for name in CASES:
        params = load_task_params(str(case_params(root, name, models, data)))
        layout = RunLayout(root / name)
        validation.run_step(params, layout)
        tokenization.run_step(params, layout)
        print(f"prepared {name}", flush=True)


def check_case(root: Path, name: str, timeout: int) -> dict[str, Any]:
    """Run the train step of case `name`; what it printed last, its summary, and the checks."""
    import pandas as pd

    started = time.monotonic()
    command = [sys.executable, "-m", "tasks.steps.training", "--params", str(root / f"{name}.yaml"),
               "--workdir", str(root / name)]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code, output = -1, f"timed out after {timeout} s: {err.stdout or ''}{err.stderr or ''}"
    seconds = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {"case": name, "exit_code": code, "seconds": seconds}
    if code != 0:
        return {**result, "passed": False, "output_tail": output[-3000:]}
    layout_root = root / name
    summary = json.loads((layout_root / "train" / "metrics.json").read_text())
    history = pd.read_csv(layout_root / "train" / "history.csv").dropna(subset=["train_loss"])
    weights = sorted(p.name for p in (layout_root / "model").rglob("*.safetensors"))
    _, distributed, extra = CASES[name]
    expected = {
        "precision": extra.get("precision", "bf16"),  # train.precision auto: bf16 on CUDA
        "world_size": 1,
        "launcher": distributed.get("launcher", "none"),
        "strategy": distributed.get("strategy", "ddp"),
    }
    found = {key: summary.get(key) for key in expected}
    loss = [float(history["train_loss"].iloc[0]), float(history["train_loss"].iloc[-1])]
    checks = {
        "summary": found == expected,
        "loss_falls": loss[1] < loss[0],
        "one_model_saved": weights.count("model.safetensors") == 1,  # LoRA: the adapter beside it
    }
    return {**result, "passed": all(checks.values()), "checks": checks, "found": found,
            "train_loss_first_last": loss, "weights": weights, "output_tail": output[-1500:]}  # fmt: skip


def check(root: Path, cases: list[str], timeout: int) -> dict[str, Any]:
    """Every case in turn; the GPU, the library versions and each case's result."""
    import torch
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    for module in ("peft", "trl", "accelerate", "datasets", "deepspeed"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError as err:
            versions[module] = f"missing: {err}"
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
        "versions": versions,
        "cases": [],
    }
    for name in cases:
        result = check_case(root, name, timeout)
        print(f"{'PASS' if result['passed'] else 'FAIL'} {name} ({result['seconds']} s)", flush=True)
        if not result["passed"]:
            print(result["output_tail"], flush=True)
        report["cases"].append(result)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["prepare", "check"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--timeout", type=int, default=240, help="seconds per case")
    parser.add_argument("--out", type=Path, default=None, help="JSON report of check")
    args = parser.parse_args()
    if args.action == "prepare":
        prepare(args.root.resolve())
        return
    report = check(args.root.resolve(), args.cases, args.timeout)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    passed = sum(case["passed"] for case in report["cases"])
    print(f"{passed}/{len(report['cases'])} cases passed on {report['gpu']}")
    sys.exit(0 if passed == len(report["cases"]) else 1)


if __name__ == "__main__":
    main()
