"""The decision rule stored with a trained multi-label model: one sigmoid threshold per label
(chosen by `training.decide_on_validation`).

Chosen right after training, on the validation split, by the rule recorded with the tokenized
splits (`multi_label.threshold`, `multi_label.default_threshold`: part of their cache key, so a
reused training was decided by the same rule). Written twice in the model directory: in
`config.json` (what evaluate, compare and the registered model read; the weights' fingerprint
covers it, so a finished evaluation is never reused across thresholds) and as `thresholds.json`,
the readable record with each label's threshold and the validation rows it was chosen on.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.core.errors import RefineryError

CONFIG_KEY = "multi_label_thresholds"  # in the model's config.json: thresholds in label id order
THRESHOLDS_FILE = "thresholds.json"
RULE_KEYS = ("threshold_rule", "default_threshold")  # recorded with the tokenized splits


def store_thresholds(model_dir: Path, thresholds: list[float], rule: str, validation_rows: int) -> None:
    """Write the thresholds into the saved model's config.json and `thresholds.json`."""
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config[CONFIG_KEY] = [float(t) for t in thresholds]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    labels = [str(config["id2label"][str(i)]) for i in range(len(thresholds))]
    record = {
        "rule": rule if validation_rows else "default",
        "validation_rows": validation_rows,
        "thresholds": dict(zip(labels, thresholds, strict=True)),
    }
    (model_dir / THRESHOLDS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_thresholds(model_dir: Path) -> list[float]:
    """The thresholds stored with the model at `model_dir`, in label id order."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    found = config.get(CONFIG_KEY)
    if not isinstance(found, list) or len(found) != len(config.get("id2label", {})):
        raise RefineryError(
            f"{model_dir / 'config.json'}: no '{CONFIG_KEY}' for its labels; re-run the train step"
        )
    return [float(t) for t in found]
