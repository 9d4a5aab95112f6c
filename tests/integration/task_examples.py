"""The repository's example params files of the newer task types (text pairs, regression, multi-label,
token classification), turned into runs that take seconds: the tiny BERT, a capped sample of the
bundled example data, a few steps, stores in a scratch folder. Shared by the `dvc repro` test and
the Prefect deployment runs of tests/e2e."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tasks.core.config import load_params
from tasks.task_types import task_type_for
from tests.conftest import REPO_ROOT

# params file -> the metric its task type must report (checked by the tests that run it)
EXAMPLES = {
    "params-pairs.yaml": "accuracy",
    "params-regression.yaml": "rmse",
    "params-multi-label.yaml": "f1_micro",
    "params-ner.yaml": "f1",
}


def example_params(
    name: str, root: Path, base_model: Path, data_root: Path = REPO_ROOT, **sections: dict[str, Any]
) -> Path:
    """`name` (a params file of the repository) as a tiny run in `root`: its data files read from
    `data_root`, at most 48 train and 24 test examples, 3 steps, no gate bounds that a 3-step model
    cannot meet, and its own registered model name (`tiny-<file stem>`)."""
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / name).read_text(encoding="utf-8"))
    data = raw["data"]
    for key in ("train_path", "test_path", "labels_path"):
        if data.get(key):
            data[key] = str(data_root / data[key])
    data.update(max_train_samples=48, max_test_samples=24)
    raw["tokenize"]["cache_dir"] = str(root / "cache" / "tokenized")
    raw["evaluate"]["cache_dir"] = str(root / "cache" / "results")
    raw["train"].update(
        base_model=str(base_model), max_steps=3, batch_size=8, eval_batch_size=16, learning_rate=5e-3,
        checkpoint_dir=str(root / "cache" / "checkpoints"), progress_bars=False, logging_steps=1,
        early_stopping_patience=None,
    )  # fmt: skip
    raw["evaluate"]["batch_size"] = 16
    raw["gate"]["thresholds"] = {}
    raw["gate"]["maximums"] = {}
    raw["register"].update(
        model_name=f"tiny-{Path(name).stem}", tracking_uri=f"sqlite:///{root / 'mlflow.db'}"
    )
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    task_type_for(load_params(path), str(path))  # a broken example fails here, not in a subprocess
    return path
