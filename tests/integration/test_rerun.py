"""A re-run with nothing changed: the finished validation, training, evaluation and champion
comparison are reused, the same weights are not registered a second time (the console says which
version holds them) and the result is the first run's; other test data or evaluation params are
scored again."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tasks.cli.main import main as refinery
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision
from tasks.registry.promotion import promote
from tasks.steps import comparison, evaluation
from tasks.task_types import load_task_params
from tests.integration.conftest import build_run_dir, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]
RESULTS = ["eval/metrics.json", "gate.json", "registration.json", "eval/predictions.csv"]


def entries(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.iterdir()) if cache.is_dir() else []


def test_a_rerun_reuses_training_evaluation_and_comparison_and_registers_nothing_new(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params_path = tiny_params(tmp_path, tiny_base_model, sample_csv)
    seconds = []
    for run in ("first", "again"):
        started = time.perf_counter()
        assert refinery(["run", "--params", str(params_path), "--workdir", str(tmp_path / run)]) == 0
        seconds.append(time.perf_counter() - started)
    shown = capsys.readouterr().out
    print(f"full run {seconds[0]:.1f} s, re-run {seconds[1]:.1f} s")
    assert "reused the finished training" in shown
    assert "version 1 of tiny-intent already holds these weights" in shown
    first, again = tmp_path / "first", tmp_path / "again"
    key = (first / "eval" / "reuse_key.txt").read_text().strip()
    assert f"reused evaluation {key}" in (again / "run.log").read_text()
    # the data contract is not run again either: its report is the first run's, reused by content
    assert "validate: reused validation" in (again / "run.log").read_text()
    assert (again / "validation" / "result.json").read_text() == (
        first / "validation" / "result.json"
    ).read_text()
    for name in RESULTS:  # the same metrics, predictions, gate decision and registered version
        assert (again / name).read_text() == (first / name).read_text(), name
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    versions = client.search_model_versions("name = 'tiny-intent'")
    assert [str(v.version) for v in versions] == ["1"] and versions[0].tags["model_weights_hash"]
    # what `refinery gc` keeps for it: the cache entries it trained from
    checkpoints = [p.name for p in (tmp_path / "cache" / "checkpoints").iterdir() if p.is_dir()]
    assert [versions[0].tags["checkpoint_key"]] == checkpoints
    assert (tmp_path / "cache" / "tokenized" / versions[0].tags["tokenized_key"]).is_dir()
    # the register step's declared outputs, for the version found
    assert "# " in (again / "model_card.md").read_text() and (again / "gate_report.json").is_file()

    # with a champion: the comparison is made once, then reused while champion and challenger stay
    params, layout = load_task_params(params_path), RunLayout(again)
    promote(client, "tiny-intent", "1", "test", "test")
    compared = [comparison.run_step(params, layout) for _ in range(2)]
    assert compared[0] == compared[1] and compared[0]["champion_version"] == "1"
    assert len(entries(tmp_path / "cache" / "results" / "compare")) == 1

    # other evaluation params: scored again, under a key of their own
    evaluations = tmp_path / "cache" / "results" / "evaluate"
    assert entries(evaluations) == [key]
    evaluation.run_step(load_task_params(params_path, {"evaluate.batch_size": 3}), layout)
    assert len(entries(evaluations)) == 2


def test_other_test_data_or_evaluation_params_make_another_evaluation_key(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    layout = build_run_dir(tmp_path / "run", GateDecision(passed=True, reasons=[]))
    params = load_task_params(tiny_params(tmp_path, tiny_base_model, sample_csv))
    key = evaluation.evaluation_key(params, layout)
    moved = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"cache_dir": "x"})})
    assert evaluation.evaluation_key(moved, layout) == key  # where results are kept scores nothing
    other = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"batch_size": 7})})
    assert evaluation.evaluation_key(other, layout) != key
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    test.iloc[:-1].to_parquet(layout.splits_dir / "test.parquet", index=False)
    assert evaluation.evaluation_key(params, layout) != key
