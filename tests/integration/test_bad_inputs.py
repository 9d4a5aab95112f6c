"""Bad input through `refinery run`: one clear line naming the place, exit 1, nothing registered."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.cli.main import main as refinery
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]


def _run(tmp_path: Path, params: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = refinery(["run", "--params", str(params), "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err and err[-1].startswith("error: ")
    return err[-1]


def _nothing_tracked(tmp_path: Path) -> None:
    assert not (tmp_path / "run" / "model").exists()  # stopped before training
    db = tmp_path / "mlflow.db"
    if db.exists():
        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        assert client.search_registered_models() == []
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_missing_label_column(
    tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.csv"
    banking_sample().rename(columns={"category": "intent"}).to_csv(path, index=False)
    line = _run(tmp_path, tiny_params(tmp_path, tiny_base_model, path), capsys)
    assert "train.csv" in line and "category" in line
    _nothing_tracked(tmp_path)


def test_empty_texts(tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = banking_sample()
    frame.loc[[4, 9], "text"] = ["", "   "]
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    line = _run(tmp_path, tiny_params(tmp_path, tiny_base_model, path), capsys)
    assert "train.csv" in line and "5" in line and "10" in line  # 1-based data rows
    _nothing_tracked(tmp_path)


def test_label_only_in_test(
    tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    banking_sample().to_csv(train, index=False)
    held_out = banking_sample(per_class=5, split="test")
    held_out.loc[2, "category"] = "crypto_refund"
    held_out.to_csv(test, index=False)
    params = tiny_params(tmp_path, tiny_base_model, train, data={"test_path": str(test)})
    line = _run(tmp_path, params, capsys)
    assert "test.csv" in line and "crypto_refund" in line and "3" in line
    _nothing_tracked(tmp_path)


def test_malformed_csv_row(tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "train.csv"
    banking_sample().to_csv(path, index=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[7] = lines[7] + ",extra,fields"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = _run(tmp_path, tiny_params(tmp_path, tiny_base_model, path), capsys)
    assert line == f"error: {path}: line 8 (row 7): expected 2 fields, saw 4"
    _nothing_tracked(tmp_path)


def test_non_utf8_bytes(tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "train.csv"
    banking_sample().to_csv(path, index=False)
    raw = path.read_bytes().replace(b"card", b"c\xe4rd", 1)
    path.write_bytes(raw)
    line = _run(tmp_path, tiny_params(tmp_path, tiny_base_model, path), capsys)
    assert "train.csv: line" in line and "not valid UTF-8" in line
    _nothing_tracked(tmp_path)


def test_params_value_of_wrong_type(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tiny_params(tmp_path, tiny_base_model, sample_csv, train={"epochs": "three"})
    line = _run(tmp_path, params, capsys)
    assert "'train.epochs'" in line and "valid number" in line and "'three'" in line
    _nothing_tracked(tmp_path)


def test_unreachable_hub_model(
    tmp_path: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str], tiny_base_model: Path
) -> None:
    params = tiny_params(
        tmp_path, tiny_base_model, sample_csv, train={"base_model": "someorg/not-cached-model"}
    )
    line = _run(tmp_path, params, capsys)
    assert "train.base_model: 'someorg/not-cached-model'" in line and "Hugging Face Hub" in line
    _nothing_tracked(tmp_path)
