"""Task types, one package each, behind one interface (`tasks.task_types.base.TaskType`).

`TASK_TYPES` maps the `task:` value of params.yaml to its implementation. Adding a task type is
one package under tasks/task_types/ and one line here.
"""

from __future__ import annotations

from pathlib import Path

from tasks.core.config import Params, load_params
from tasks.core.errors import ConfigError
from tasks.task_types.base import TaskType
from tasks.task_types.causal_lm.task import CausalLMTask
from tasks.task_types.classification.task import ClassificationTask
from tasks.task_types.multi_label.task import MultiLabelTask
from tasks.task_types.preference.task import PreferenceTask
from tasks.task_types.regression.task import RegressionTask
from tasks.task_types.token_classification.task import TokenClassificationTask

__all__ = ["TASK_TYPES", "TaskType", "load_task_params", "task_type_for"]

TASK_TYPES: dict[str, TaskType] = {
    "sequence_classification": ClassificationTask(),
    "causal_lm": CausalLMTask(),
    "preference": PreferenceTask(),
    "multi_label_classification": MultiLabelTask(),
    "regression": RegressionTask(),
    "token_classification": TokenClassificationTask(),
}


def task_type_for(params: Params, source: str = "params") -> TaskType:
    """The task type `params.task` names, after it checked the params; one line when unknown."""
    found = TASK_TYPES.get(params.task)
    if found is None:
        known = ", ".join(sorted(TASK_TYPES))
        raise ConfigError(f"{source}: 'task' must be one of {known}; got {params.task!r}")
    try:
        found.check_params(params)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return found


def load_task_params(path: str | Path = "params.yaml", overrides: dict[str, object] | None = None) -> Params:
    """`load_params` and the task type's own checks: every entry point reads params through this."""
    params = load_params(path, overrides)
    task_type_for(params, str(path))
    return params
