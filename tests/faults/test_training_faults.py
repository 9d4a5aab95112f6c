"""Faults around training with real `refinery run` processes: SIGKILL of the whole process group in
the middle of training then the same command again, and two runs with the same inputs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from safetensors.torch import load_file

from tasks.training.checkpoints import COMPLETE_MARKER, TRAINED_DIR
from tasks.training.resumption import SAVED_MARKER
from tests.faults.conftest import KILLABLE_TRAINING as TRAIN
from tests.faults.conftest import child_env
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.faults

MODEL = "tiny-intent"


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-base"), ["x", "y"])


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.csv"
    banking_sample().to_csv(path, index=False)
    return path


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The `refinery run` processes a test starts: any still running at its end is killed."""
    runs: list[subprocess.Popen[str]] = []
    yield runs
    for run in runs:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=60)


def _refinery_run(
    started: list[subprocess.Popen[str]], root: Path, params: Path, workdir: Path
) -> subprocess.Popen[str]:
    """`refinery run` in its own process group (its local Prefect API included), as a user starts it."""
    command = [
        sys.executable,
        "-m",
        "tasks.cli.main",
        "run",
        "--params",
        str(params),
        "--workdir",
        str(workdir),
    ]
    run = subprocess.Popen(
        command,
        cwd=root,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    started.append(run)
    return run


def _finished(run: subprocess.Popen[str], timeout_s: float = 600) -> str:
    output = run.communicate(timeout=timeout_s)[0]
    trace = output.find("Traceback")
    assert run.returncode == 0, output[trace : trace + 3000] if trace >= 0 else output[-3000:]
    return output


def _checkpoint_folder(checkpoints: Path) -> Path:
    keyed = [p for p in checkpoints.iterdir() if p.is_dir()] if checkpoints.is_dir() else []
    return keyed[0] if keyed else checkpoints / "none-yet"


def _versions(uri: str) -> list[str]:
    found = MlflowClient(tracking_uri=uri).search_model_versions(f"name = '{MODEL}'")
    return sorted(str(v.version) for v in found)


def _weights(workdir: Path) -> dict[str, object]:
    return load_file(str(workdir / "model" / "model.safetensors"))


def _same_tensors(left: dict[str, object], right: dict[str, object]) -> list[str]:
    """Names of the tensors that differ (bit for bit) between two state dicts."""
    import torch

    assert left.keys() == right.keys()
    return [name for name in left if not torch.equal(left[name], right[name])]  # type: ignore[arg-type]


def _killed_after_checkpoints(
    started: list[subprocess.Popen[str]], root: Path, params: Path, checkpoints_wanted: int
) -> tuple[Path, list[int]]:
    """Start `refinery run`, SIGKILL its process group once `checkpoints_wanted` checkpoints are
    saved; the checkpoint folder and the steps of the saved checkpoints."""
    first = _refinery_run(started, root, params, root / "run")
    checkpoints = root / "cache" / "checkpoints"
    deadline = time.monotonic() + 600
    while (
        len(list(_checkpoint_folder(checkpoints).glob(f"checkpoint-*/{SAVED_MARKER}"))) < checkpoints_wanted
    ):
        assert first.poll() is None, (
            f"ended before {checkpoints_wanted} checkpoints:\n{first.communicate()[0][-3000:]}"
        )
        assert time.monotonic() < deadline, f"not {checkpoints_wanted} checkpoints in 600 s"
        time.sleep(0.005)
    os.killpg(first.pid, signal.SIGKILL)  # the run and its local Prefect API, mid-training
    first.wait(timeout=60)
    output_dir = _checkpoint_folder(checkpoints)
    kept = sorted(int(p.parent.name.split("-")[1]) for p in output_dir.glob(f"checkpoint-*/{SAVED_MARKER}"))
    assert first.returncode == -signal.SIGKILL and not (output_dir / COMPLETE_MARKER).exists()
    assert len(kept) >= checkpoints_wanted and max(kept) < TRAIN["max_steps"], kept
    return output_dir, kept


def test_a_killed_run_resumes_and_ends_with_the_weights_of_an_uninterrupted_one(
    tmp_path: Path, base_model: Path, train_csv: Path, started: list[subprocess.Popen[str]]
) -> None:
    killed_root, reference_root = tmp_path / "killed", tmp_path / "reference"
    params = {}
    for root in (killed_root, reference_root):
        root.mkdir()
        params[root] = tiny_params(root, base_model, train_csv, train=TRAIN)
    began = time.monotonic()
    reference = _refinery_run(started, reference_root, params[reference_root], reference_root / "run")

    output_dir, _ = _killed_after_checkpoints(started, killed_root, params[killed_root], 1)

    again = _finished(_refinery_run(started, killed_root, params[killed_root], killed_root / "run"))
    _finished(reference)
    print(f"kill and resume beside an uninterrupted run: {time.monotonic() - began:.1f} s")

    summary = json.loads((killed_root / "run" / "train" / "metrics.json").read_text(encoding="utf-8"))
    assert summary["resumed"] is True and summary["global_steps"] == TRAIN["max_steps"], summary
    assert "Traceback" not in again
    differing = _same_tensors(_weights(killed_root / "run"), _weights(reference_root / "run"))
    assert differing == [], f"resumed weights differ from the uninterrupted run's in {differing}"
    assert (output_dir / TRAINED_DIR / "metrics.json").is_file()
    assert _versions(f"sqlite:///{killed_root / 'mlflow.db'}") == ["1"]


def test_two_runs_with_the_same_inputs_at_once_train_once_and_register_once(
    tmp_path: Path, base_model: Path, train_csv: Path, started: list[subprocess.Popen[str]]
) -> None:
    params = tiny_params(tmp_path, base_model, train_csv, train={**TRAIN, "max_steps": 24})
    workdirs = [tmp_path / "run-a", tmp_path / "run-b"]
    began = time.monotonic()
    runs = [_refinery_run(started, tmp_path, params, workdir) for workdir in workdirs]
    outputs = [_finished(run) for run in runs]
    print(f"two runs at once: {time.monotonic() - began:.1f} s")

    summaries = [json.loads((w / "train" / "metrics.json").read_text(encoding="utf-8")) for w in workdirs]
    assert sorted(bool(s.get("reused")) for s in summaries) == [False, True], summaries  # one trained
    output_dir = _checkpoint_folder(tmp_path / "cache" / "checkpoints")
    assert (output_dir / COMPLETE_MARKER).exists() and (output_dir / TRAINED_DIR / "metrics.json").is_file()
    for checkpoint in output_dir.glob("checkpoint-*"):
        assert (checkpoint / SAVED_MARKER).is_file(), f"{checkpoint} was not completely written"
    assert _same_tensors(_weights(workdirs[0]), _weights(workdirs[1])) == []
    # the same weights under the same params are one version; the second run says which one holds them
    assert _versions(f"sqlite:///{tmp_path / 'mlflow.db'}") == ["1"]
    assert sum("version 1 of tiny-intent already holds these weights" in out for out in outputs) == 1, outputs
    registrations = [json.loads((w / "registration.json").read_text(encoding="utf-8")) for w in workdirs]
    assert {r["version"] for r in registrations} == {"1"}


def test_a_cut_last_checkpoint_is_skipped_with_a_warning_and_the_one_before_resumed(
    tmp_path: Path, base_model: Path, train_csv: Path, started: list[subprocess.Popen[str]]
) -> None:
    """Fault case 7: the newest checkpoint's weights file cut short (as a full disk or a kill in the
    middle of the write leaves it): the rerun says so, resumes from the checkpoint before it and
    finishes; one version."""
    params = tiny_params(tmp_path, base_model, train_csv, train=TRAIN)
    output_dir, kept = _killed_after_checkpoints(started, tmp_path, params, 2)
    newest, before = output_dir / f"checkpoint-{kept[-1]}", kept[-2]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    again = _finished(_refinery_run(started, tmp_path, params, tmp_path / "run"))
    resumed = f"{TRAIN['max_steps']} steps, resumed from checkpoint-{before} ("  # and how many were skipped
    assert resumed in again and "newer checkpoint(s) unusable, removed: see run.log)" in again, again[-3000:]
    log = (tmp_path / "run" / "run.log").read_text(encoding="utf-8")
    cut = f"{newest.name} not used for resuming: model.safetensors cannot be read"
    assert cut in log and f"; resuming from checkpoint-{before}" in log, log[-3000:]
    summary = json.loads((tmp_path / "run" / "train" / "metrics.json").read_text(encoding="utf-8"))
    assert summary["resumed_from"] == f"checkpoint-{before}" and summary["checkpoints_skipped"] >= 1, summary
    assert summary["global_steps"] == TRAIN["max_steps"], summary
    for checkpoint in output_dir.glob("checkpoint-*"):  # the cut one was removed, then saved again whole
        assert (checkpoint / SAVED_MARKER).is_file(), f"{checkpoint} was not completely written"
    assert _versions(f"sqlite:///{tmp_path / 'mlflow.db'}") == ["1"]
