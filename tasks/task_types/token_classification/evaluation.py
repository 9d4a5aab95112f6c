"""Scoring a fine-tuned token classifier on the test split with seqeval: entity-level precision,
recall and F1 (strict with the configured scheme by default, `token_classification.mode`), token
accuracy, a per-entity-type table and a predictions table of every sentence.

A word's predicted tag is the one of its first sub-token (as trained); words cut off at
`max_length` are predicted O, so a truncated sentence is scored on all its words.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.core.sections import TokenClassificationConfig
from tasks.task_types.token_classification.schemes import sentence_counts

Tags = Sequence[Sequence[str]]
_SUMMARY_ROWS = ("micro avg", "macro avg", "weighted avg")


def _seqeval_rule(cfg: TokenClassificationConfig) -> dict[str, Any]:
    """seqeval's keyword arguments for the configured scoring: strict with a scheme, or conlleval's."""
    if cfg.mode == "default":
        return {"mode": None, "scheme": None}
    from seqeval import scheme

    return {"mode": "strict", "scheme": getattr(scheme, cfg.scheme)}


def entity_metrics(references: Tags, predictions: Tags, cfg: TokenClassificationConfig) -> dict[str, float]:
    """Micro entity precision, recall, F1 and token accuracy (what a gate and early stopping read)."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    truth, found = [list(t) for t in references], [list(p) for p in predictions]
    rule = {**_seqeval_rule(cfg), "zero_division": 0}
    return {
        "f1": float(f1_score(truth, found, **rule)),
        "precision": float(precision_score(truth, found, **rule)),
        "recall": float(recall_score(truth, found, **rule)),
        "accuracy": float(accuracy_score(truth, found)),
    }


def per_type_table(references: Tags, predictions: Tags, cfg: TokenClassificationConfig) -> pd.DataFrame:
    """One row per entity type (sorted): label, precision, recall, f1, support (true entities)."""
    from seqeval.metrics import classification_report

    report = classification_report(
        [list(t) for t in references], [list(p) for p in predictions],
        output_dict=True, zero_division=0, **_seqeval_rule(cfg),
    )  # fmt: skip
    rows = [
        {"label": kind, "precision": float(s["precision"]), "recall": float(s["recall"]),
         "f1": float(s["f1-score"]), "support": int(s["support"])}
        for kind, s in sorted(report.items()) if kind not in _SUMMARY_ROWS
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])


def word_tags(predicted: np.ndarray, labels: np.ndarray, names: list[str]) -> list[str]:
    """The tags of a sentence's words: `predicted` ids at the sub-tokens whose label is not -100
    (the first sub-token of each word kept within max_length)."""
    keep = np.asarray(labels) != -100
    return [names[int(i)] for i in np.asarray(predicted)[keep]]


def predict_tags(
    model: Any, tokenizer: Any, dataset: Any, names: list[str], batch_size: int
) -> list[list[str]]:
    """The predicted tags of each tokenized sentence's kept words, in the dataset's row order
    (batched longest first, so each batch pads to similar lengths)."""
    import torch
    from transformers import DataCollatorForTokenClassification

    columns = [c for c in [*tokenizer.model_input_names, "labels"] if c in dataset.column_names]
    rows = dataset.select_columns(columns).with_format(None)[:]
    order = np.argsort(-np.asarray([len(ids) for ids in rows["input_ids"]]), kind="stable")
    collate = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
    out: list[list[str]] = [[] for _ in order]
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = collate([{c: rows[c][i] for c in columns} for i in index])
            labels = batch.pop("labels").numpy()
            logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits
            predicted = logits.argmax(dim=-1).cpu().numpy()
            for k, i in enumerate(index):
                out[i] = word_tags(predicted[k], labels[k], names)
    return out


def _load_model(model_dir: Path) -> tuple[Any, list[str]]:
    import torch
    from transformers import AutoModelForTokenClassification

    if not (model_dir / "config.json").is_file():
        raise RefineryError(f"evaluate: no trained model in {model_dir}; run the train step first")
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return model, [str(model.config.id2label[i]) for i in range(model.config.num_labels)]


def predictions_table(raw: pd.DataFrame, predicted: Tags, cfg: TokenClassificationConfig) -> pd.DataFrame:
    """Each test sentence: tokens, tags and predicted tags (space-joined), its entity TP / FP / FN."""
    references = [list(t) for t in raw["tags"]]
    counts = sentence_counts(references, predicted, cfg.mode, cfg.scheme)
    return pd.DataFrame(
        {
            "tokens": raw["text"],
            "tags": [" ".join(t) for t in references],
            "predicted": [" ".join(p) for p in predicted],
            "tp": counts[:, 0],
            "fp": counts[:, 1],
            "fn": counts[:, 2],
            "source_file": raw["source_file"],
            "source_row": raw["source_row"],
        }
    )


def evaluate_run(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the run's model on its test split; write the per-type table and the predictions."""
    from tasks.models.tokenizers import load_tokenizer
    from tasks.tokenization.cache import load_tokenized

    cfg = params.token_classification
    model, names = _load_model(layout.model_dir)
    test = load_tokenized(layout)["test"]
    raw_path = layout.splits_dir / "test.parquet"
    raw = pd.read_parquet(raw_path)
    if len(raw) != len(test) or len(raw) == 0:
        raise RefineryError(f"{raw_path}: {len(raw)} sentences but the tokenized test split has {len(test)}; "
                            "re-run the tokenize step")  # fmt: skip
    kept = predict_tags(model, load_tokenizer(layout.model_dir), test, names, params.evaluate.batch_size)
    predicted = [p + ["O"] * (len(tags) - len(p)) for p, tags in zip(kept, raw["tags"], strict=True)]
    references = [list(t) for t in raw["tags"]]
    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    per_type_table(references, predicted, cfg).to_csv(layout.per_class_csv, index=False, float_format="%.4f")
    predictions_table(raw, predicted, cfg).to_csv(layout.predictions_csv, index=False)
    return {**entity_metrics(references, predicted, cfg), "n_test": len(raw)}
