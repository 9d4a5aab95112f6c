"""What the benchmark measures, apart from running the two programs: the machine's GEMM peak,
training FLOPs per token, tokenization throughput and the cached `dvc repro` re-run."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from tasks.core.config import Params
from tasks.data.splitting import Splits
from tasks.models.tokenizers import load_tokenizer, model_max_length
from tasks.task_types.classification.comparison import read_predictions
from tasks.task_types.classification.tokenization import derive_max_length, tokenize_splits

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def gemm_flops(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0) -> float:
    """Dense matmul FLOP/s of this machine for `dtype` (square `size` matrices)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)


def cuda_gemm_flops(dtype: torch.dtype, size: int = 8192, seconds: float = 2.0) -> float:
    """Dense matmul FLOP/s of the CUDA device for `dtype`: `gemm_flops` on the GPU (sft workload's MFU)."""
    a = torch.randn(size, size, dtype=dtype, device="cuda")
    b = torch.randn(size, size, dtype=dtype, device="cuda")
    for _ in range(3):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
        if count % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - start)


def measured(command: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, float, str]:
    """Run `command`; return wall seconds, the child's own peak RSS in MB, and its stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # reaps the child: rusage of this process alone
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"benchmark command failed ({process.returncode}): {shlex.join(command)}")
    return wall, usage.ru_maxrss / 1024, out


def correctness(predictions_csv: Path) -> pd.Series:
    """1.0 / 0.0 per test row of the evaluate step's predictions (label = prediction), indexed by
    `source_file:source_row` in sorted order: two runs on the same test rows pair row by row."""
    return row_correctness(read_predictions(predictions_csv))


def row_correctness(frame: pd.DataFrame) -> pd.Series:
    """`correctness` of a predictions frame (`label`, `prediction`, `source_file`, `source_row`)."""
    right = (frame["label"] == frame["prediction"]).astype(float).to_numpy()
    return pd.Series(right, index=(frame["source_file"] + ":" + frame["source_row"]).to_numpy()).sort_index()


def model_flops_per_token(model_dir: Path, mean_tokens: float) -> float:
    """Training FLOPs per useful token: 6 x non-embedding params + attention (Kaplan et al.)."""
    config = json.loads((model_dir / "config.json").read_text())
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    non_embedding = layers * 12 * hidden * hidden  # attention (4 d^2) + feed-forward (8 d^2)
    return 6 * non_embedding + 6 * layers * mean_tokens * hidden


def tokenization_rate(splits: Splits, model_dir: Path, params: Params, repeats: int = 3) -> float:
    """Examples/s of Refinery's tokenization (every split, in memory, no cache) — median of repeats."""
    tokenizer = load_tokenizer(model_dir)
    texts = splits.train["text"].tolist()
    max_length = derive_max_length(texts, tokenizer, params.tokenize, model_max_length(tokenizer, model_dir))
    rows = sum(len(frame) for frame in splits.frames().values())
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokenize_splits(splits, tokenizer, max_length, params.tokenize)
        rates.append(rows / (time.perf_counter() - start))
    return statistics.median(rates)


def dvc_rerun(work: Path, params_yaml: str, env: dict[str, str]) -> dict[str, float]:
    """`dvc repro` in a clone of the committed repository: the first run, then again unchanged."""
    repo = work / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    shutil.copytree(REPO / "data", repo / "data")
    (repo / "params.yaml").write_text(params_yaml, encoding="utf-8")
    dvc = [str(BIN / "dvc"), "repro"]
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    first, _, _ = measured(dvc, env, cwd=repo)
    second, _, _ = measured(dvc, env, cwd=repo)
    return {"first_wall_s": first, "rerun_wall_s": second, "ratio": second / first}
