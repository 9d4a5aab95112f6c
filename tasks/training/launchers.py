"""torchrun (`torch.distributed.run`) as a subprocess, and what every launched rank reports back.

The train step starts `python -m torch.distributed.run ... -m <rank module>` and streams its output,
line by line, into the `refinery.training` logger (the console, or the Prefect task's log). torchrun
stops every rank when one fails (`--max-restarts 0`); the failing rank leaves its error, one line,
in the errors folder (`recorded_failure`), and the step raises it: the rank's message, not a hang
and not a page of tracebacks. A rank stuck in a collective times out after `ddp_timeout`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from tasks.core.config import DistributedConfig
from tasks.core.errors import RefineryError

TRAINING_LOGGER = "refinery.training"
ERRORS_DIR_ENV = "REFINERY_RANK_ERRORS"  # where a failing rank writes its error
log = logging.getLogger(TRAINING_LOGGER)


class RankFailed(RuntimeError):
    """A rank of a launched training failed (a crash, a kill): retrying may help."""


class RankRefused(RefineryError):
    """A rank refused the run's data, params or environment: the same on every retry."""


def torchrun_command(module: str, args: list[str], cfg: DistributedConfig, run_id: str) -> list[str]:
    """The torchrun command line that runs `python -m module args` on `cfg.processes` ranks per node."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={cfg.processes}"]
    command += [f"--nnodes={cfg.nodes}", "--max-restarts=0"]
    if cfg.nodes > 1:  # every node runs the same command; they meet at the rendezvous endpoint
        command += ["--rdzv-backend=c10d", f"--rdzv-endpoint={cfg.rdzv_endpoint}", f"--rdzv-id={run_id}"]
    else:
        command.append("--standalone")
    return [*command, "-m", module, *args]


def run_torchrun(module: str, args: list[str], cfg: DistributedConfig, errors_dir: Path, run_id: str) -> None:
    """Run `module` under torchrun, its output into the training logger; raise the failing rank's error."""
    shutil.rmtree(errors_dir, ignore_errors=True)
    errors_dir.mkdir(parents=True)
    command = torchrun_command(module, args, cfg, run_id)
    log.info("launching %d x %d ranks: %s", cfg.nodes, cfg.processes, " ".join(command))
    repo = str(Path(__file__).resolve().parents[2])  # the ranks import `tasks` as this process does
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, ERRORS_DIR_ENV: str(errors_dir), "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    last: deque[str] = deque(maxlen=3)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip():
                last.append(line.rstrip())
                log.info("%s", line.rstrip())
        code = process.wait()
    except BaseException:
        process.terminate()  # torchrun forwards the signal to its ranks
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        raise
    if code != 0:
        raise rank_failure(errors_dir, f"torchrun exited with {code}: {' | '.join(last)}")


@contextlib.contextmanager
def recorded_failure(errors_dir: str | None) -> Iterator[None]:
    """In a rank: an exception leaves `rank-N.json` (rank, type, one-line message) before it propagates."""
    try:
        yield
    except BaseException as err:
        if errors_dir:
            rank = os.environ.get("RANK", "0")
            record = {
                "rank": rank,
                "type": type(err).__name__,
                "message": str(err).strip().splitlines()[0] if str(err).strip() else "",
                "user_error": isinstance(err, RefineryError),
            }
            Path(errors_dir, f"rank-{rank}.json").write_text(json.dumps(record), encoding="utf-8")
        raise


def rank_failure(errors_dir: Path, fallback: str) -> Exception:
    """The first rank's recorded error (the others were stopped because of it), else `fallback`."""
    records = sorted(errors_dir.glob("rank-*.json"), key=lambda path: path.stat().st_mtime)
    if not records:
        return RankFailed(f"train: {fallback}")
    first = json.loads(records[0].read_text(encoding="utf-8"))
    message = f"train: rank {first['rank']} failed: {first['type']}: {first['message']}"
    return RankRefused(message) if first["user_error"] else RankFailed(message)
