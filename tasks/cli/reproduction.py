"""`refinery reproduce NAME --version N`: re-run a registered version's pipeline and check its test metrics.

The version's run holds the effective params (`params.yaml` artifact), the git commit and the
data hash. When this checkout is at that commit with that data, the steps run here; otherwise a
temporary clone is checked out at the commit and its data restored with `dvc pull` from the
bundled remote, so the user's working tree is never touched. The steps (validate, tokenize,
train, evaluate) write to a new run directory and a new MLflow run, tagged with what it
reproduces; the test metrics must be exactly equal (CPU, same seed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException

from tasks.core.config import Params, parse_params
from tasks.core.errors import RefineryError
from tasks.core.files import read_json
from tasks.core.layout import RunLayout, new_run_dir
from tasks.lineage.git import git
from tasks.lineage.record import UNKNOWN, current_lineage
from tasks.registry.promotion import registered_model
from tasks.steps import evaluation, tokenization, training, validation
from tasks.task_types import load_task_params

STEPS = (validation, tokenization, training, evaluation)
PARAMS_ARTIFACT = "params.yaml"


@dataclass(frozen=True)
class Recorded:
    """What the registry says about a version: its run, params, code and data versions, metrics."""

    name: str
    version: str
    run_id: str
    experiment_id: str
    params_text: str
    git_commit: str
    git_dirty: bool  # trained with uncommitted changes: the commit alone may not be that code
    data_hash: str
    metrics: dict[str, float]  # test metrics, without the `test_` prefix
    base_model_version: str | None = None  # NAME/VERSION a `models:/` base model resolved to


@dataclass(frozen=True)
class Reproduction:
    """The re-run: where it ran, its new MLflow run and metrics, and how they compare."""

    recorded: Recorded
    workspace: str  # "current checkout" or "clone of <commit>"
    run_dir: Path
    run_id: str
    metrics: dict[str, float]

    @property
    def differences(self) -> dict[str, tuple[float, float | None]]:
        return {
            key: (value, self.metrics.get(key))
            for key, value in self.recorded.metrics.items()
            if self.metrics.get(key) != value
        }

    def report(self) -> str:
        """A table of recorded and reproduced test metrics and the verdict."""
        rec = self.recorded
        dirty = " (recorded with uncommitted changes)" if rec.git_dirty else ""
        lines = [
            f"Reproduced {rec.name} version {rec.version} (run {rec.run_id}) in the {self.workspace}",
            f"  git commit {rec.git_commit}{dirty}, data {rec.data_hash}",
            f"  new run {self.run_id}, files in {self.run_dir}",
            f"  {'metric':<18}{'recorded':>22}{'reproduced':>22}  equal",
        ]
        for key, value in sorted(rec.metrics.items()):
            again = self.metrics.get(key)
            shown = "-" if again is None else repr(again)
            lines.append(f"  {key:<18}{value!r:>22}{shown:>22}  {'yes' if again == value else 'NO'}")
        verdict = "identical test metrics" if not self.differences else "test metrics DIFFER"
        return "\n".join([*lines, f"Result: {verdict}"])


def recorded(client: MlflowClient, name: str, version: str) -> Recorded:
    """Read version `version` of `name` and its run back from the registry."""
    registered_model(client, name)  # a clear error for an unknown model
    try:
        found = client.get_model_version(name, version)
    except MlflowException:
        raise RefineryError(f"model '{name}' has no version {version}") from None
    run = client.get_run(str(found.run_id))
    try:
        text = mlflow.artifacts.load_text(f"runs:/{found.run_id}/{PARAMS_ARTIFACT}")
    except (MlflowException, OSError):
        raise RefineryError(
            f"{name} version {version}: its run {found.run_id} has no {PARAMS_ARTIFACT} artifact "
            "(registered before params were logged); cannot reproduce it exactly"
        ) from None
    metrics = {k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")}
    return Recorded(
        name=name,
        version=version,
        run_id=str(found.run_id),
        experiment_id=run.info.experiment_id,
        params_text=text,
        git_commit=found.tags.get("git_commit", UNKNOWN),
        git_dirty=found.tags.get("git_dirty") == "true",
        data_hash=found.tags.get("data_hash", UNKNOWN),
        metrics=metrics,
        base_model_version=found.tags.get("base_model_version"),
    )


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RefineryError(f"reproduce: {what} failed in {cwd}: {tail[0]}")


@contextmanager
def workspace(rec: Recorded, params: Params, repo: Path) -> Iterator[tuple[Path, str]]:
    """This checkout when it is at the recorded commit with the recorded data, else a clone there."""
    head = git(repo, "rev-parse", "HEAD").stdout.strip() or UNKNOWN
    here = current_lineage(params, repo_dir=repo)
    if rec.git_commit in (UNKNOWN, head) and here.data_hash == rec.data_hash:
        dirty = (
            " (with uncommitted changes: the code run may differ from the commit)" if here.git_dirty else ""
        )
        yield repo, f"current checkout{dirty}"
        return
    if rec.git_commit == UNKNOWN or git(repo, "cat-file", "-e", f"{rec.git_commit}^{{commit}}").returncode:
        raise RefineryError(
            f"reproduce: the recorded commit {rec.git_commit} is not in {repo.resolve()} and the data "
            f"here ({here.data_hash}) is not the recorded {rec.data_hash}"
        )
    with tempfile.TemporaryDirectory(prefix="refinery-reproduce-") as tmp:
        clone = Path(tmp) / "repo"
        _run(
            ["git", "clone", "--quiet", "--shared", "--no-checkout", str(repo.resolve()), str(clone)],
            repo,
            "git clone",
        )
        _run(["git", "checkout", "--quiet", "--detach", rec.git_commit], clone, "git checkout")
        remote = repo.resolve() / "infra" / "dvc-remote"  # the bundled remote may not be committed
        if remote.is_dir() and not (clone / "infra" / "dvc-remote").exists():
            shutil.copytree(remote, clone / "infra" / "dvc-remote")
        if (clone / "data.dvc").is_file():
            _run([sys.executable, "-m", "dvc", "pull", "--quiet", "data.dvc"], clone, "dvc pull")
        require_recorded_data(rec, params, clone)
        yield clone, f"clone of {rec.git_commit[:12]}"


def require_recorded_data(rec: Recorded, params: Params, root: Path) -> None:
    """Stop, in one line, unless the data files under `root` are exactly those the version read."""
    found = current_lineage(params, repo_dir=root).data_hash
    if found != rec.data_hash:
        raise RefineryError(
            f"reproduce: the data at commit {rec.git_commit[:12]} ({found}) is not the data "
            f"{rec.name} version {rec.version} was trained on ({rec.data_hash}); restore "
            f"data.train_path '{params.data.train_path}' (and data.test_path) to that content and "
            "run reproduce from a checkout at that commit"
        )


def run_steps(params_file: Path, layout: RunLayout, cwd: Path, in_process: bool) -> dict[str, float]:
    """validate -> tokenize -> train -> evaluate with the recorded params; the test metrics."""
    if in_process:
        params = load_task_params(params_file)
        for step in STEPS:
            step.run_step(params, layout)
    else:  # the recorded commit's own code, in its own layout (steps moved to tasks/steps/)
        package = "tasks.steps" if (cwd / "tasks" / "steps").is_dir() else "tasks"
        for step in STEPS:
            name = step.__name__.rsplit(".", 1)[-1]
            cmd = [
                sys.executable,
                "-m",
                f"{package}.{name}",
                "--params",
                str(params_file),
                "--workdir",
                str(layout.root),
            ]
            _run(cmd, cwd, f"step {name}")
    return {k: float(v) for k, v in read_json(layout.eval_metrics).items()}


def reproduce(client: MlflowClient, name: str, version: str, runs_dir: Path = Path("runs")) -> Reproduction:
    """Re-run version `version` of `name` from its recorded params and data into a new run."""
    rec = recorded(client, name, version)
    params = parse_params(yaml.safe_load(rec.params_text) or {}, f"runs:/{rec.run_id}/{PARAMS_ARTIFACT}")
    layout = RunLayout(new_run_dir(runs_dir, f"reproduce-{name}-v{version}-").resolve())
    params_file = layout.root / PARAMS_ARTIFACT
    retraining = retraining_params(rec.params_text, layout.root / "checkpoints", rec.base_model_version)
    params_file.write_text(retraining, encoding="utf-8")
    repo = Path.cwd()
    with workspace(rec, params, repo) as (root, where):
        metrics = run_steps(params_file, layout, root, in_process=root == repo)
    run_id = log_reproduction(client, rec, layout, metrics, where)
    return Reproduction(rec, where, layout.root, run_id, metrics)


def retraining_params(params_text: str, checkpoint_dir: Path, base_version: str | None = None) -> str:
    """The recorded params with checkpoints in a fresh directory: the model is trained again,
    never reused from a cache or resumed (a reproduction that reused the weights proves nothing).
    `checkpoint_dir` is not part of what is trained, so the result is the same. A base model given
    as `models:/NAME@ALIAS` becomes the version it resolved to then (`base_version`), wherever the
    alias points now."""
    raw = yaml.safe_load(params_text) or {}
    raw.setdefault("train", {})["checkpoint_dir"] = str(checkpoint_dir)
    if base_version and str(raw["train"].get("base_model", "")).startswith("models:/"):
        raw["train"]["base_model"] = f"models:/{base_version}"
    return yaml.safe_dump(raw, sort_keys=False)


def log_reproduction(
    client: MlflowClient, rec: Recorded, layout: RunLayout, metrics: dict[str, float], where: str
) -> str:
    """A new MLflow run in the original's experiment: the params, the metrics and what it reproduces."""
    equal = all(metrics.get(k) == v for k, v in rec.metrics.items())
    tags = {
        "refinery.reproduction_of": f"{rec.name}/{rec.version}",
        "refinery.reproduced_run": rec.run_id,
        "refinery.reproduction_match": str(equal).lower(),
        "refinery.reproduction_workspace": where,
        "git_commit": rec.git_commit,
        "data_hash": rec.data_hash,
    }
    run = client.create_run(rec.experiment_id, run_name=f"reproduce-{rec.name}-v{rec.version}")
    run_id = str(run.info.run_id)
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(f"test_{k}", v, now, 0) for k, v in sorted(metrics.items())],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.log_text(run_id, rec.params_text, PARAMS_ARTIFACT)
        client.log_artifact(run_id, str(layout.eval_metrics), artifact_path="eval")
    except BaseException:
        _end_failed(client, run_id)
        raise
    client.set_terminated(run_id)
    return run_id


def _end_failed(client: MlflowClient, run_id: str) -> None:
    """Mark the reproduction's run FAILED (never left RUNNING); if the store is gone too, say so."""
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception as err:
        print(f"warning: MLflow run {run_id} could not be marked FAILED: {err}", file=sys.stderr)
