"""End-to-end fixtures: one `make up` stack on free ports for the whole session, always stopped.

The stack's directory and ports are the test's own (REFINERY_STACK_DIR/…_PORT), so a developer's
stack on 4200/5000 is never touched. Training runs go through `prefect deployment run` on a tiny
configuration: the integration tests' tiny BERT and ~200-row BANKING77 sample, and a DPO run
(`task: preference`) of a tiny Llama on a few dozen pairs built from the same sample.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.stack import Stack
from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tests.conftest import REPO_ROOT
from tests.fixtures import build_tiny_classifier
from tests.integration.conftest import SAMPLE_CLASSES, banking_sample, tiny_params
from tests.integration.preference import REJECTED, dpo_params, preference_pairs
from tests.integration.task_examples import EXAMPLES, example_params

MODEL_NAME = "tiny-intent-e2e"
DPO_MODEL_NAME = "tiny-dpo-e2e"
EXPERIMENT = "refinery-e2e"
DEPLOYMENT = "finetune/banking77"
# variables that would point the test's stack at someone else's databases
_FOREIGN = (
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "PGPASSFILE",
    "REFINERY_DB",  # the session's stack runs on the default, its own PostgreSQL
)


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TeamStack:
    """The test's stack and the environment a team member's shell would have for it."""

    stack: Stack
    env: dict[str, str]
    home: Path  # scratch directory of the session (params, model, CLI state)

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a command from the repository root in the team's environment, output captured."""
        return subprocess.run(
            list(command), cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def make(self, target: str, *variables: str) -> subprocess.CompletedProcess[str]:
        """`make -s target VAR=value…`, which must succeed."""
        done = self.run("make", "-s", target, *variables)
        assert done.returncode == 0, f"make {target} failed:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    """The session's stack, not yet started (see `stack_up`); `make down` at the end, whatever happened."""
    home = tmp_path_factory.mktemp("team")
    ports = {
        name: str(free_port())
        for name in ("REFINERY_PREFECT_PORT", "REFINERY_MLFLOW_PORT", "REFINERY_POSTGRES_PORT")
    }
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
    env.update(ports, REFINERY_STACK_DIR=str(home / "stack"), PREFECT_HOME=str(home / "prefect-cli"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # prefect, refinery
    stack = Stack.from_env(env)
    env.update(stack.client_env())
    team = TeamStack(stack=stack, env=env, home=home)
    try:
        yield team
    finally:
        team.run("make", "-s", "down", timeout=180)


@pytest.fixture
def stack_up(team_stack: TeamStack) -> TeamStack:
    """The session's stack, running: `make up` (a no-op when it already runs)."""
    team_stack.make("up")
    return team_stack


@dataclass(frozen=True)
class TrainedRun:
    flow_run_id: str
    workdir: Path
    output: str
    model_name: str  # the registered model its params name


def deployment_run(team: TeamStack, params: Path, overrides: str, workdir: Path) -> subprocess.Popen[str]:
    """`prefect deployment run … --watch`, as the README shows it, started in the background."""
    return subprocess.Popen(
        ["prefect", "deployment", "run", DEPLOYMENT, "--param", f"params_path={params}",
         "--param", f"overrides={overrides}", "--param", f"workdir={workdir}",
         "--watch", "--watch-timeout", "600"],
        cwd=REPO_ROOT, env=team.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _dpo_params(team: TeamStack) -> Path:
    """A DPO params file (`task: preference`): a tiny Llama and 32 pairs from the BANKING77 sample."""
    pairs = preference_pairs(banking_sample(per_class=8))
    model = build_tiny_causal_lm(team.home / "tiny-lm", [*pairs["prompt"], *SAMPLE_CLASSES, REJECTED])
    register = {"model_name": DPO_MODEL_NAME, "experiment": EXPERIMENT}
    return dpo_params(team.home / "dpo", model, pairs, register=register)


@pytest.fixture(scope="session")
def trained(team_stack: TeamStack) -> list[TrainedRun]:
    """Trainings submitted at once to the served deployment: two classifications, one DPO (another
    params file, as a user would pass it) and one of each newer task type from its example params
    file (text pairs, regression, multi-label, token classification); all must complete."""
    team_stack.make("up")
    base = build_tiny_classifier(team_stack.home / "tiny-base", ["x", "y"])
    train_csv = team_stack.home / "train.csv"
    banking_sample().to_csv(train_csv, index=False)
    params = tiny_params(
        team_stack.home, base, train_csv, register={"model_name": MODEL_NAME, "experiment": EXPERIMENT}
    )
    submitted = [
        (params, '{"train.max_steps": 20}', MODEL_NAME),
        (params, '{"train.max_steps": 12, "train.learning_rate": 0.001}', MODEL_NAME),
        (_dpo_params(team_stack), '{"train.max_steps": 2}', DPO_MODEL_NAME),
        *(
            (example_params(name, team_stack.home / Path(name).stem, base), "{}", f"tiny-{Path(name).stem}")
            for name in EXAMPLES
        ),
    ]
    workdirs = [team_stack.home / f"run-{i}" for i in range(len(submitted))]
    runs = [deployment_run(team_stack, p, o, w) for (p, o, _), w in zip(submitted, workdirs, strict=True)]
    trained: list[TrainedRun] = []
    try:
        for run, workdir, (_, _, name) in zip(runs, workdirs, submitted, strict=True):
            output = run.communicate(timeout=900)[0]
            assert run.returncode == 0, output[-3000:]
            match = re.search(r"UUID: ([0-9a-f-]{36})", output)
            assert match, output[-3000:]
            trained.append(TrainedRun(match.group(1), workdir, output, name))
    finally:
        for run in runs:  # a watcher left behind by a failed assertion
            if run.poll() is None:
                run.kill()
                run.wait()
    return trained
