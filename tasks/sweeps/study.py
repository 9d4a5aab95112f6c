"""The Optuna study of a sweep: its storage, sampler and pruner, and what a resumed study still owes.

The study lives in a database (`sweep.storage`, or REFINERY_SWEEP_STORAGE for the team's, or
SQLite beside the tokenize cache), so `--study NAME` again resumes a killed sweep: the trials it
finished count towards `sweep.trials`, and a trial its killed process left running is failed
(marked `interrupted`, not counted) and its MLflow run ended as killed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

import optuna
from optuna.trial import TrialState

from tasks.core.config import Params, SweepConfig
from tasks.metrics import LOWER_IS_BETTER

STORAGE_ENV = "REFINERY_SWEEP_STORAGE"  # the team database's URL wins over sweep.storage
OWNER_ATTR = "owner"  # host:pid of the process running a trial
INTERRUPTED_ATTR = "interrupted"


def storage_url(params: Params) -> str:
    """Where studies are kept: REFINERY_SWEEP_STORAGE, sweep.storage, else SQLite in the cache."""
    given = os.environ.get(STORAGE_ENV) or params.sweep.storage
    if given:
        return given
    folder = Path(params.tokenize.cache_dir).parent / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'studies.db').resolve()}"


def direction(metric: str) -> Literal["minimize", "maximize"]:
    """Minimise a loss or perplexity, maximise any other validation metric."""
    return "minimize" if metric in LOWER_IS_BETTER else "maximize"


def sampler_for(cfg: SweepConfig, seed: int, grid: dict[str, list[object]]) -> optuna.samplers.BaseSampler:
    """The sampler `sweep.sampler` names, seeded by `train.seed` (a rerun proposes the same points)."""
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)  # type: ignore[arg-type]
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner_for(cfg: SweepConfig) -> optuna.pruners.BasePruner:
    """The pruner `sweep.pruner` names; it judges the validation metric at each evaluation."""
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def open_study(
    params: Params,
    name: str,
    grid: dict[str, list[object]],
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create study `name`, or load it when it exists (a resumed sweep)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=storage_url(params),
        load_if_exists=True,
        direction=direction(params.sweep.metric),
        sampler=sampler_for(params.sweep, params.train.seed, grid),
        pruner=pruner or pruner_for(params.sweep),
    )


def own_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False  # another machine's trial may still run; only this host's can be checked
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def interrupted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials left running by a process of this host that is gone (a killed sweep)."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if _owner_gone(str(t.user_attrs.get(OWNER_ATTR, "")))
    ]


def fail_interrupted(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Mark an interrupted trial failed and `interrupted`: it does not count towards the total."""
    storage = study._storage  # Optuna's public storage API, reached through the study
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, trial.number)
    storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, True)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)


def counted(study: optuna.Study) -> int:
    """Trials that count towards `sweep.trials`: complete, pruned, or failed on their own."""
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED_ATTR))
        for t in study.get_trials(deepcopy=False)
    )
