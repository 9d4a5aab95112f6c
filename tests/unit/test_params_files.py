"""The repository's params files against the config model and dvc.yaml: `dvc repro` reads the
keys each stage lists straight from the file, so a key left to its default breaks the stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core.config import Params, load_params
from tests.conftest import REPO_ROOT

PARAMS_FILES = [
    "params.yaml",
    "params-sft.yaml",
    "params-dpo.yaml",
    "params-pairs.yaml",
    "params-regression.yaml",
    "params-multi-label.yaml",
    "params-ner.yaml",
]
FREE_FORM = {"gate.thresholds", "gate.maximums", "sweep.space"}  # any keys: metric bounds, searched keys


def flat_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM:
            keys |= flat_keys(value, f"{path}.")
        else:
            keys.add(path)
    return keys


def resolves(raw: dict[str, Any], dotted: str) -> bool:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_params_file_writes_out_every_key(name: str) -> None:
    load_params(REPO_ROOT / name)
    written = flat_keys(yaml.safe_load((REPO_ROOT / name).read_text(encoding="utf-8")))
    assert sorted(flat_keys(Params().as_dict()) - written) == []


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_every_dvc_stage_param_is_in_the_params_file(name: str) -> None:
    raw = yaml.safe_load((REPO_ROOT / name).read_text(encoding="utf-8"))
    stages = yaml.safe_load(Path(REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    listed = {(stage, key) for stage, spec in stages.items() for key in spec.get("params", [])}
    assert listed and sorted((s, k) for s, k in listed if not resolves(raw, k)) == []
