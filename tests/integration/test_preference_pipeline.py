"""Preference tuning (DPO, `task: preference`) end to end on a tiny Llama: the loss moves held-out
preference accuracy, and the Prefect flow validates, trains, scores, compares and registers.
(`dvc repro` of a DPO params file: tests/integration/test_sft_pipeline.py, in its repository copy;
a Prefect deployment run of one: tests/e2e, the `trained` fixture.)"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tasks.core.config import load_params
from tasks.core.layout import RunLayout
from tasks.steps import registration
from tasks.task_types.preference.evaluation import preferences_csv
from tests.integration.conftest import SAMPLE_CLASSES, banking_sample
from tests.integration.preference import REJECTED, dpo_params, preference_pairs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return preference_pairs(banking_sample(per_class=12))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory, pairs: pd.DataFrame) -> Path:
    return build_tiny_causal_lm(
        tmp_path_factory.mktemp("tiny-lm"), [*pairs["prompt"], *SAMPLE_CLASSES, REJECTED]
    )


@pytest.mark.usefixtures("mlflow_isolated")
def test_dpo_raises_held_out_preference_accuracy_above_half(
    tmp_path: Path, tiny_lm: Path, pairs: pd.DataFrame
) -> None:
    from tasks.steps import evaluation, tokenization, training, validation

    def accuracy(learning_rate: float, steps: int, run: str) -> dict[str, float]:
        train = {"learning_rate": learning_rate, "max_steps": steps}
        params = load_params(dpo_params(tmp_path / run, tiny_lm, pairs, train=train))
        layout = RunLayout(tmp_path / run / "run")
        validation.run_step(params, layout)
        tokenization.run_step(params, layout)
        training.run_step(params, layout)
        return evaluation.run_step(params, layout)

    untrained = accuracy(1e-12, 1, "untrained")  # the same steps, weights barely moved: policy ~ reference
    trained = accuracy(2e-2, 12, "trained")
    assert trained["preference_accuracy"] > max(0.75, untrained["preference_accuracy"]), (trained, untrained)
    assert trained["reward_margin"] > untrained["reward_margin"] and trained["reward_margin"] > 0
    assert trained["logp_chosen"] > trained["logp_rejected"]


@pytest.mark.usefixtures("prefect_api", "mlflow_isolated")
def test_flow_registers_a_generating_dpo_model_and_compares_with_the_champion(
    tmp_path: Path, tiny_lm: Path, pairs: pd.DataFrame
) -> None:
    params_path = dpo_params(tmp_path, tiny_lm, pairs)
    result = finetune(params_path=str(params_path), workdir=str(tmp_path / "run"))
    layout = RunLayout(tmp_path / "run")
    metrics = json.loads(layout.eval_metrics.read_text())
    assert result["gate"]["passed"] is True
    assert {"preference_accuracy", "reward_margin", "logp_chosen", "logp_rejected"} <= set(metrics)
    scored = pd.read_csv(preferences_csv(layout))
    assert len(scored) == metrics["n_test"] and scored["right"].mean() == pytest.approx(
        metrics["preference_accuracy"]
    )
    generations = pd.read_csv(layout.generations_csv, keep_default_na=False)
    assert len(generations) == 6 and generations["reference"].isin(SAMPLE_CLASSES).all()

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking)
    version = client.get_model_version_by_alias("tiny-dpo", "challenger")
    artifacts = [a.path for a in client.list_artifacts(str(version.run_id), "eval")]
    assert "eval/preferences.csv" in artifacts and "eval/generations.csv" in artifacts
    mlflow.set_tracking_uri(tracking)
    merged = mlflow.pyfunc.load_model("models:/tiny-dpo@challenger").predict(
        ["lost my card", "exchange rate"]
    )
    assert len(merged) == 2 and all(isinstance(text, str) for text in merged)
    adapter_params = load_params(params_path, {"register.causal_lm_format": "adapter"})
    assert registration.register_step(adapter_params, layout).version == "2"
    adapter = mlflow.pyfunc.load_model("models:/tiny-dpo@challenger")
    assert adapter.predict(["lost my card", "exchange rate"]) == merged  # same weights, same answers

    # a second preference version against the first as champion: the same held-out pairs scored by
    # both, a paired bootstrap of preference accuracy, and guard rails per intent (the slice column)
    client.set_registered_model_alias("tiny-dpo", "champion", "1")
    gate = {"champion": {"test": "non_inferiority", "margin": 1.0, "slice_column": "intent",
                         "guard_rails": {"min_support": 1}}}  # fmt: skip
    register = {"tracking_uri": tracking}
    again = dpo_params(
        tmp_path / "second", tiny_lm, pairs, train={"seed": 7, "max_steps": 4}, gate=gate, register=register
    )
    second = finetune(params_path=str(again), workdir=str(tmp_path / "second" / "run"))
    compared = json.loads(RunLayout(tmp_path / "second" / "run").comparison_json.read_text())
    assert second["gate"]["passed"] is True and compared["champion_version"] == "1"
    assert compared["bootstrap"]["metric"] == compared["group_metric"] == "preference_accuracy"
    assert compared["bootstrap"]["champion"] == pytest.approx(metrics["preference_accuracy"])
    assert {g["name"] for g in compared["groups"]} <= set(SAMPLE_CLASSES) and compared["groups"]
    assert len(client.search_model_versions("name='tiny-dpo'")) == 3
