"""Champion vs challenger through the real flow: a better model is promoted under `auto`, a worse one
is refused with its reasons; `explain` shows the chain and `reproduce` gives identical metrics (CPU)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from tasks.cli.main import main
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateFailed
from tasks.registry.promotion import aliases_of
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api")]

MODEL = "tiny-intent"
ONE_STEP = {"max_steps": 1}  # barely trained: predicts one class
TRAINED = {"epochs": 8, "learning_rate": 2e-3}  # learns about half the test set


@dataclass(frozen=True)
class History:
    """Three runs on one store: v1 (one step), v2 (trained), then a refused one-step challenger."""

    root: Path
    uri: str
    results: dict[str, dict[str, Any]]
    refused: str  # the GateFailed message of the third run
    base_model: Path


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Iterator[History]:
    root = tmp_path_factory.mktemp("champion")
    train_csv = root / "train.csv"
    banking_sample().to_csv(train_csv, index=False)
    results: dict[str, dict[str, Any]] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(root)  # ./mlruns artifacts and the reproduction's runs/ land here

        def run(name: str, train: dict[str, Any]) -> dict[str, Any]:
            params = tiny_params(
                root, tiny_base_model, train_csv, train=train, register={"promotion": "auto"}
            )
            return finetune(params_path=str(params), workdir=str(root / name))

        results["v1"] = run("v1", ONE_STEP)
        results["v2"] = run("v2", TRAINED)
        with pytest.raises(GateFailed) as refused:
            run("worse", ONE_STEP)
        yield History(root, f"sqlite:///{root / 'mlflow.db'}", results, str(refused.value), tiny_base_model)


def aliases(uri: str) -> dict[str, str]:
    return aliases_of(MlflowClient(tracking_uri=uri).get_registered_model(MODEL))


def test_without_a_champion_the_thresholds_decide_and_auto_promotes(history: History) -> None:
    first = history.results["v1"]
    assert first["registration"]["version"] == "1"
    assert not any("champion" in reason for reason in first["gate"]["reasons"])
    comparison = json.loads(RunLayout(history.root / "v1").comparison_json.read_text())
    assert comparison == {"champion_version": None, "reason": f"no 'champion' alias on {MODEL}"}


def test_a_better_challenger_is_promoted_with_evidence_and_lineage(history: History) -> None:
    second = history.results["v2"]
    assert second["gate"]["passed"] and second["registration"]["version"] == "2"
    evidence = next(r for r in second["gate"]["reasons"] if r.startswith("vs champion v1"))
    assert "> min_delta +0.0000" in evidence
    assert aliases(history.uri) == {"champion": "2", "previous-champion": "1", "challenger": "2"}

    layout = RunLayout(history.root / "v2")
    champion_rows = pd.read_csv(layout.champion_predictions_csv)
    assert len(champion_rows) == 40 and champion_rows["prediction"].nunique() == 1  # v1: one class
    report = json.loads(layout.gate_report_json.read_text())
    assert report["champion"]["version"] == "1" and report["comparison"]["bootstrap"]["resamples"] == 1000
    assert (
        report["promotion"]["outcome"]
        == f"{MODEL}: 'champion' -> version 2; 'previous-champion' -> version 1"
    )

    client = MlflowClient(tracking_uri=history.uri)
    version = client.get_model_version(MODEL, "2")
    tags = version.tags
    assert tags["gate.report"] == f"runs:/{version.run_id}/gate_report.md"
    assert tags["mlflow_run_id"] == version.run_id and tags["validation"].startswith("passed: ")
    assert len(tags["base_model_hash"]) == 64 and len(tags["tokenizer_fingerprint"]) == 64
    assert tags["base_model"] == str(history.base_model)
    assert tags["prefect_flow_run_id"] != "none" and tags["promoted_from"] == "1"
    assert (
        version.description.startswith(f"# Model card: {MODEL}") and "## Gate: passed" in version.description
    )
    assert f"`runs:/{version.run_id}/model_card.md`" in version.description
    logged = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"params.yaml", "gate_report.json", "gate_report.md", "comparison"} <= logged


def test_a_worse_challenger_is_refused_with_the_reasons_shown(history: History) -> None:
    message = history.refused
    assert "vs champion v2" in message and "<= min_delta +0.0000" in message
    assert "guard rail: class" in message and "McNemar" in message
    assert aliases(history.uri) == {"champion": "2", "previous-champion": "1", "challenger": "2"}
    assert len(MlflowClient(tracking_uri=history.uri).search_model_versions(f"name = '{MODEL}'")) == 2

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        artifacts = [a for a in prefect.read_latest_artifacts() if a.key == "finetune-gate-report"]
    assert artifacts and "## Decision: **FAILED**" in str(artifacts[0].data)


def test_explain_prints_the_chain_and_the_gate_report(
    history: History, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(history.root)
    assert main(["explain", f"{MODEL}@champion", "--tracking-uri", history.uri]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{MODEL} version 2 (aliases: challenger, champion)")
    for line in ("tokenizer fingerprint", "base model weights (sha256)", "Prefect flow run", "promoted_from"):
        assert line in out, line
    assert "# Gate report: tiny-intent version 2" in out and "## Champion comparison (version 1)" in out

    assert main(["explain", f"{MODEL}/1", "--tracking-uri", history.uri]) == 0
    assert "version 1 (aliases: previous-champion)" in capsys.readouterr().out
    assert main(["explain", f"{MODEL}@nope", "--tracking-uri", history.uri]) == 1
    assert "error: model 'tiny-intent' has no alias 'nope'" in capsys.readouterr().err


def test_reproduce_gives_identical_test_metrics_on_cpu(
    history: History, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(history.root)
    code = main(["reproduce", MODEL, "--version", "2", "--tracking-uri", history.uri])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Result: identical test metrics" in out and "in the current checkout" in out
    client = MlflowClient(tracking_uri=history.uri)
    original = client.get_run(client.get_model_version(MODEL, "2").run_id)
    [again] = client.search_runs(
        [original.info.experiment_id], f"tags.`refinery.reproduction_of` = '{MODEL}/2'"
    )
    assert again.data.tags["refinery.reproduction_match"] == "true"
    assert again.data.metrics["test_accuracy"] == original.data.metrics["test_accuracy"]
    [run_dir] = (history.root / "runs").glob(f"reproduce-{MODEL}-v2-*")
    trained = json.loads((run_dir / "train" / "metrics.json").read_text())
    assert "reused" not in trained and trained["global_steps"] > 0  # trained again, not from the cache
