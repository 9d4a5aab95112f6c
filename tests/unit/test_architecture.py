"""The shape of the code: no import cycles, layers that only look down, DVC deps that cannot go
stale, one task-type registry whose members implement the whole interface, a lean wheel."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tasks.core.config import ConfigError, parse_params
from tasks.task_types import TASK_TYPES, load_task_params, task_type_for
from tasks.task_types.base import TaskType
from tests.conftest import REPO_ROOT
from tests.import_graph import closure, cycles, import_graph, module_files

# Lowest first: a package may import its own layer and those before it, never one after it.
LAYERS = [
    {"tasks.core"},
    {"tasks.data", "tasks.metrics"},
    {"tasks.validation", "tasks.comparison", "tasks.models"},
    {"tasks.tokenization", "tasks.training"},
    {"tasks.lineage"},
    {"tasks.gating"},
    {"tasks.registry"},
    {"tasks.task_types"},
    {"tasks.steps"},
    {"tasks.sweeps"},
    {"tasks.cli"},
]


def _layer(module: str) -> int:
    package = ".".join(module.split(".")[:2])
    return next(i for i, names in enumerate(LAYERS) if package in names)


def test_tasks_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_a_cycle_is_found_when_there_is_one(tmp_path: Path) -> None:
    for name, text in {"__init__": "", "a": "from tasks import b\n", "b": "import tasks.a\n"}.items():
        (tmp_path / "tasks").mkdir(exist_ok=True)
        (tmp_path / "tasks" / f"{name}.py").write_text(text, encoding="utf-8")
    assert cycles(import_graph(tmp_path)) == [["tasks.a", "tasks.b"]]


def test_every_package_sits_in_a_layer_and_only_imports_down() -> None:
    graph = import_graph()
    upward = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.count(".") >= 1
        for target in targets
        if target.count(".") >= 1 and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_step_imports_a_task_type_module_by_name() -> None:
    graph = import_graph()
    named = {
        f"{step} -> {target}"
        for step in graph
        if step.startswith("tasks.steps.")
        for target in graph[step]
        if target.startswith("tasks.task_types.")
    }
    assert named == set()


def _stages() -> dict[str, dict[str, object]]:
    raw = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    stages: dict[str, dict[str, object]] = raw["stages"]
    return stages


def test_every_module_a_stage_imports_is_one_of_its_deps() -> None:
    graph, files = import_graph(), module_files()
    for name, stage in _stages().items():
        module = str(stage["cmd"]).split("python -m ", 1)[1].split()[0]
        deps = [str(d) if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]  # type: ignore[attr-defined]
        uncovered = [
            str(files[m].relative_to(REPO_ROOT))
            for m in sorted(closure(graph, module))
            if not any(files[m].relative_to(REPO_ROOT).as_posix().startswith(d.rstrip("/")) for d in deps)
        ]
        assert uncovered == [], f"dvc.yaml stage {name} misses {uncovered}"


def test_an_unknown_task_is_one_line_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        task_type_for(parse_params({"task": "summarisation"}), "params.yaml")
    message = str(caught.value)
    assert message == (
        "params.yaml: 'task' must be one of causal_lm, multi_label_classification, preference, "
        "regression, sequence_classification, token_classification; got 'summarisation'"
    )
    path = tmp_path / "p.yaml"
    path.write_text("task: nope\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}: 'task' must be one of .*; got 'nope'$"):
        load_task_params(path)


@pytest.mark.parametrize("name", sorted(TASK_TYPES))
def test_each_task_type_implements_the_whole_interface(name: str) -> None:
    task_type = TASK_TYPES[name]
    assert isinstance(task_type, TaskType) and task_type.name == name
    assert not inspect.isabstract(type(task_type))
    for method in TaskType.__abstractmethods__:
        implementation = getattr(type(task_type), method)
        assert implementation is not getattr(TaskType, method), f"{name} does not implement {method}"
        assert inspect.signature(implementation).parameters.keys() == (
            inspect.signature(getattr(TaskType, method)).parameters.keys()
        ), f"{name}.{method} does not take the interface's arguments"
    assert task_type.metrics and set(task_type.champion_metrics) <= set(task_type.metrics)


def test_no_module_is_much_over_300_lines() -> None:
    long = {
        str(path.relative_to(REPO_ROOT)): n
        for path in [*(REPO_ROOT / "tasks").rglob("*.py"), *(REPO_ROOT / "flows").rglob("*.py")]
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 330
    }
    assert long == {}


def test_the_wheel_ships_only_the_import_roots_a_user_needs(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy of what the build reads: in place it would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in ("tasks", "flows", "benchmarks", "infra", "scripts", "tests"):  # every top-level package
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("refinery-*.whl"))
    roots = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {r for r in roots if not r.endswith((".dist-info", ".data"))} == {"tasks", "flows"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "tasks/metrics/rouge_l/rouge_l.py" in names  # the local metric modules travel along
    assert not any(n.startswith(("tests/", "benchmarks/", "infra/", "scripts/")) for n in names)
