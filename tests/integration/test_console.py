"""The console of `refinery run`: a screenful (one line per step, the summary), the rest in run.log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cli.main import main as refinery
from tasks.core.layout import RunLayout
from tests.integration.conftest import tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]

STEPS = ("validate", "tokenize", "train", "evaluate", "compare", "gate", "register")


def test_a_short_run_prints_a_screenful_and_logs_the_rest(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, train={"progress_bars": True})
    code = refinery(["run", "--params", str(params), "--workdir", str(tmp_path / "run")])
    captured = capsys.readouterr()
    shown = (captured.out + captured.err).splitlines()
    print("\n".join(shown))
    assert code == 0
    assert len(shown) <= 40, shown
    for step in STEPS:
        assert any(line.startswith(f"✓ {step} ") for line in shown), step
    assert any(line.startswith("  train step ") for line in shown)  # not a TTY: a line every 20 %
    assert not any("\r" in line or "{'loss'" in line for line in shown)
    log = RunLayout(tmp_path / "run").run_log.read_text(encoding="utf-8")
    assert "Finished in state Completed" in log  # Prefect's own run log went to the file
    assert "register finished in" in log

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        plots = [a for a in client.read_latest_artifacts() if a.key == "finetune-plots"]
    assert plots and "get-artifact?path=train/training_curve.png" in str(plots[0].data)
    assert "get-artifact?path=eval/per_class_f1.png" in str(plots[0].data)


def test_a_refused_run_prints_its_error_once(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, validate={"min_examples_per_class": 500})
    code = refinery(["run", "--params", str(params), "--workdir", str(tmp_path / "run")])
    captured = capsys.readouterr()
    shown = (captured.out + captured.err).splitlines()
    assert code == 1
    assert any(line.startswith("✗ validate ") for line in shown), shown
    errors = [line for line in shown if "min_examples_per_class" in line]
    assert len(errors) == 1 and errors[0].startswith("error: data validation failed"), shown
    assert len(shown) <= 10, shown
