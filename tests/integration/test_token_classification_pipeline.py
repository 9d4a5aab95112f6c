"""Token classification (`task: token_classification`) end to end on a tiny BERT: CoNLL train and
JSON Lines test sentences from the example data, the Prefect flow validates, trains, scores with
seqeval, registers a pyfunc that returns entity spans for raw text, and a second version is
compared against the first as champion (paired bootstrap of entity F1 over sentences)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.finetune import finetune
from tasks.core.layout import RunLayout
from tasks.data.reading import read_table
from tasks.models.served_encoder import entity_spans
from tests.conftest import REPO_ROOT
from tests.integration.conftest import tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api", "mlflow_isolated")]
NER = REPO_ROOT / "data" / "ner"


def _sentences(tmp_path: Path) -> tuple[Path, Path]:
    """80 train sentences (64 with entities) as CoNLL and 24 test sentences as JSON Lines, from data/ner."""
    sentences = read_table(NER / "train.conll")
    tagged = sentences["tags"].map(lambda tags: set(tags) != {"O"})
    train = pd.concat([sentences[tagged].head(64), sentences[~tagged].head(16)]).sort_index()
    blocks = [
        "\n".join(f"{t} {g}" for t, g in zip(r.tokens, r.tags, strict=True)) for r in train.itertuples()
    ]
    train_path, test_path = tmp_path / "train.conll", tmp_path / "test.jsonl"
    train_path.write_text("-DOCSTART- -X- -X- O\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    test_path.write_text("".join(line + "\n" for line in (NER / "test.jsonl").read_text().splitlines()[:24]))
    return train_path, test_path


def _params(root: Path, base: Path, conll: Path, jsonl: Path, **sections: dict[str, object]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return tiny_params(
        root, base, conll, task="token_classification",
        data={"test_path": str(jsonl), "labels_path": None, "name": "ner-sample"},
        validate={"min_examples_per_class": 1},
        train={"max_steps": 30, "metric_for_best_model": "f1", "epochs": 1, **sections.pop("train", {})},
        gate={"thresholds": {"f1": 0.0, "accuracy": 0.5}, **sections.pop("gate", {})},
        register={"model_name": "tiny-ner", "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                  **sections.pop("register", {})},
        **sections,
    )  # fmt: skip


def test_flow_registers_an_entity_tagger_and_compares_it_with_the_champion(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    train, test = _sentences(tmp_path)
    result = finetune(
        params_path=str(_params(tmp_path, tiny_base_model, train, test)), workdir=str(tmp_path / "run")
    )
    layout = RunLayout(tmp_path / "run")
    metrics = json.loads(layout.eval_metrics.read_text())
    assert result["gate"]["passed"] is True and metrics["n_test"] == 24
    assert {"f1", "precision", "recall", "accuracy"} <= set(metrics) and metrics["accuracy"] > 0.5
    splits = {name: pd.read_parquet(layout.splits_dir / f"{name}.parquet") for name in ("train", "test")}
    assert splits["train"]["source_row"].iloc[0] >= 3  # CoNLL lines (after -DOCSTART-), not record numbers
    assert splits["test"]["text"].iloc[0] == " ".join(splits["test"]["tokens"].iloc[0])
    per_type = pd.read_csv(layout.per_class_csv)
    assert set(per_type["label"]) <= {"MONEY", "CURRENCY", "CARD_BRAND", "COUNTRY"}
    predictions = pd.read_csv(layout.predictions_csv, keep_default_na=False)
    assert len(predictions) == 24 and predictions["tp"].sum() >= 0
    assert [len(p.split()) for p in predictions["predicted"]] == [
        len(t.split()) for t in predictions["tokens"]
    ]

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking)
    version = client.get_model_version_by_alias("tiny-ner", "challenger")
    artifacts = {a.path for a in client.list_artifacts(str(version.run_id), "eval")}
    assert {"eval/per_class.csv", "eval/predictions.csv"} <= artifacts
    mlflow.set_tracking_uri(tracking)
    served = mlflow.pyfunc.load_model("models:/tiny-ner@challenger")
    # the served model tags words as evaluation did: first sub-token, the same decoding into spans
    found = served.predict(pd.DataFrame({"text": predictions["tokens"]}))["entities"].tolist()
    for text, tags, entities in zip(predictions["tokens"], predictions["predicted"], found, strict=True):
        assert [(e["type"], e["start_token"], e["end_token"]) for e in entities] == entity_spans(tags.split())
        assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    raw = served.predict(pd.DataFrame({"text": ["I paid  $20 with my Visa in Spain", ""]}))
    assert len(raw) == 2 and raw["entities"].iloc[1] == []
    for entity in raw["entities"].iloc[0]:
        assert set(entity) == {"type", "text", "start", "end", "start_token", "end_token", "score"}

    # a second version against the first as champion: the same test sentences scored by both
    client.set_registered_model_alias("tiny-ner", "champion", "1")
    gate = {"champion": {"test": "non_inferiority", "margin": 1.0, "guard_rails": {"min_support": 1}}}
    again = _params(tmp_path / "second", tiny_base_model, train, test, train={"seed": 7}, gate=gate,
                    register={"tracking_uri": tracking})  # fmt: skip
    second = finetune(params_path=str(again), workdir=str(tmp_path / "second" / "run"))
    compared = json.loads(RunLayout(tmp_path / "second" / "run").comparison_json.read_text())
    assert second["gate"]["passed"] is True and compared["champion_version"] == "1"
    boot = compared["bootstrap"]
    assert boot["metric"] == "f1" and boot["low"] <= boot["delta"] <= boot["high"]
    champion_rows = pd.read_csv(RunLayout(tmp_path / "second" / "run").champion_predictions_csv)
    assert len(champion_rows) == 24 and boot["champion"] >= 0.0
    assert compared["group_by"] == "entity_type" and compared["group_metric"] == "recall"
    assert len(client.search_model_versions("name='tiny-ner'")) == 2
