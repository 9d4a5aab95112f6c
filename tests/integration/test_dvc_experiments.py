"""The DVC way to sweep: `dvc exp run --queue -S ...` for a small grid, `--run-all`, `dvc exp show`,
in a temporary copy of the repository (as tests/integration/test_dvc_pipeline.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.repository import dvc, tiny_repository

# two full pipeline runs through DVC's queue worker: minutes on a quiet machine, more on a busy one
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]


def test_dvc_queues_a_small_grid_runs_it_and_shows_the_metrics(tmp_path: Path, tiny_base_model: Path) -> None:
    repo, _ = tiny_repository(tmp_path / "repo", tiny_base_model, max_steps=4)

    for rate in ("0.001", "0.01"):
        dvc(repo, "exp", "run", "--queue", "-S", f"train.learning_rate={rate}")
    dvc(repo, "exp", "run", "--run-all", "-j", "1")
    shown = json.loads(_json(repo))

    experiments = [e for row in shown for e in (row.get("experiments") or [])]
    rates, accuracies = {}, {}
    for revision in (r for e in experiments for r in e["revs"]):
        rate = revision["data"]["params"]["params.yaml"]["data"]["train"]["learning_rate"]
        rates[rate] = revision.get("error")
        metrics = revision["data"].get("metrics") or {}
        accuracies[rate] = (metrics.get("artifacts/eval/metrics.json") or {}).get("data", {}).get("accuracy")
    assert rates == {0.001: None, 0.01: None}, shown  # both points ran the pipeline to the end
    assert all(isinstance(a, float) for a in accuracies.values()), shown  # and `exp show` has their metrics


def _json(repo: Path) -> str:
    """`dvc exp show --json` alone on stdout (the `dvc` helper mixes stderr in)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "exp", "show", "--json"],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout
