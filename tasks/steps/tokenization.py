"""The tokenize step: the validated splits as model inputs, from the content-keyed cache when possible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.core.config import Params
from tasks.core.layout import RunLayout
from tasks.data.splitting import Splits, read_splits
from tasks.models.base_models import base_model_dir
from tasks.task_types import TaskType, task_type_for
from tasks.tokenization.cache import cache_key, copy_tokenized, publish_cached


def entry_key(task_type: TaskType, splits: Splits, model_dir: Path, params: Params) -> str:
    """The cache entry these splits tokenize into: the task type's content key, tokenizer, versions."""
    return cache_key(task_type.name, task_type.tokenization_key(splits, params), model_dir)


def tokenize_cached(
    task_type: TaskType, splits: Splits, model_dir: Path, params: Params
) -> tuple[Path, dict[str, Any]]:
    """The cache entry of these splits, tokenized by `task_type` only on a miss."""
    key = entry_key(task_type, splits, model_dir, params)
    build = lambda: task_type.tokenize(splits, model_dir, params)  # noqa: E731
    return publish_cached(Path(params.tokenize.cache_dir), key, model_dir, build)


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Tokenize the validated splits into `layout.tokenized_dir` (from the cache when possible)."""
    model_dir = base_model_dir(params, layout)
    source, meta = tokenize_cached(task_type_for(params), read_splits(layout), model_dir, params)
    copy_tokenized(source, layout)
    return meta


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
