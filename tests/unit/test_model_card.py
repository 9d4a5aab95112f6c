"""The model card: licences stated, never guessed; per-class scores; how and where it was trained."""

from __future__ import annotations

from pathlib import Path

from tasks.core.config import parse_params
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage
from tasks.models.base_models import model_license
from tasks.registry.model_card import CardFacts, card_description, render_model_card

LINEAGE = Lineage("abc123", False, "data-hash", None, "params-hash", base_model_hash="weights-hash")
TEXTS = ("A text classifier.", "- Limits.")


def _card(data: dict[str, object], facts: CardFacts, base_model: str = "minilm") -> str:
    params = parse_params({"data": data, "train": {"base_model": base_model}})
    return render_model_card(params, GateDecision(passed=True, reasons=["ok"]), LINEAGE, facts, TEXTS)


def test_data_licence_comes_from_params_never_from_the_dataset_name() -> None:
    facts = CardFacts(["a", "b"], {"train": 10}, {"accuracy": 0.9}, "run-1")
    unstated = _card({"name": "banking77"}, facts)
    assert "- Licence: not stated (set data.license)" in unstated and "PolyAI" not in unstated
    stated = _card({"name": "tickets", "license": "CC0 1.0"}, facts)
    assert "- Licence: CC0 1.0" in stated


def test_card_gives_per_class_scores_procedure_hardware_and_base_licence() -> None:
    per_class = [{"label": "refund", "precision": 0.9, "recall": 0.8, "f1": 0.847, "support": 12}]
    training = {"global_steps": 30, "epochs_completed": 3.0, "precision": "fp32", "hardware": "CPU (x86_64)"}
    facts = CardFacts(["refund"], {"train": 10}, {"accuracy": 0.9}, "run-1", per_class, training, "mit")
    card = _card({"name": "tickets"}, facts, base_model="/models/own")  # not a packaged model
    assert "| refund | 0.9000 | 0.8000 | 0.8470 | 12 |" in card
    assert "30 steps (3.00 epochs)" in card and "- Hardware: CPU (x86_64)" in card
    assert "- `/models/own`: licence mit (as its model card states)\n- Weights hash: `weights-hash`" in card
    packaged = _card({"name": "tickets"}, facts)  # minilm: the licence we checked, with its citation
    assert "- `minilm`: all-MiniLM-L6-v2 by sentence-transformers, Apache-2.0" in packaged


def test_base_model_licence_is_read_from_its_own_card(tmp_path: Path) -> None:
    assert model_license(tmp_path) is None
    (tmp_path / "README.md").write_text(
        "---\nlanguage: en\nlicense: apache-2.0\n---\n# Model\n", encoding="utf-8"
    )
    assert model_license(tmp_path) == "apache-2.0"
    (tmp_path / "README.md").write_text("# A model without front matter\n", encoding="utf-8")
    assert model_license(tmp_path) is None


def test_version_description_is_the_card_without_long_tables_within_mlflow_limits() -> None:
    per_class = [{"label": f"intent_{i}", "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 40}
                 for i in range(300)]  # fmt: skip
    facts = CardFacts(["a"], {"train": 10}, {"accuracy": 0.9}, "run-1", per_class)
    params = parse_params({"data": {"name": "tickets"}})
    reasons = [f"guard rail: class intent_{i} recall -0.0100" for i in range(300)]
    card = render_model_card(params, GateDecision(passed=True, reasons=reasons), LINEAGE, facts, TEXTS)
    assert len(card) > 5000
    text = card_description(card, "runs:/r/model_card.md", "runs:/r/gate_report.md")
    assert len(text) <= 4900 and text.startswith("# Model card: banking77-intent")
    assert "## Parameters" not in text and "| intent_0 |" not in text and "## Base model" in text
    assert text.rstrip().endswith("`runs:/r/gate_report.md`") and "`runs:/r/model_card.md`" in text
