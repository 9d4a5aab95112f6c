"""A fine-tuned encoder served as an MLflow "model from code": text pairs, multi-label, regression and
token classification, whose outputs a transformers pipeline does not give in the task's shape.

MLflow logs this file itself (`python_model=<this path>`, `tasks.registry.serving.log_served_encoder`);
`model_config["kind"]` says what `predict` returns for each input row:

- `single_label`: `label`, `score` (softmax of the best class);
- `multi_label`: `labels` (every label whose sigmoid reaches its threshold) and `scores` (theirs);
- `regression`: `prediction` (the model's output in the target's own units);
- `token_classification`: `entities`, a list of {type, text, start, end, start_token, end_token, score}
  (`start`/`end`: character offsets in the text; tokens: words split on whitespace).

Input: a DataFrame with `text` (and `text_pair` for pairs), or a list of texts. Kept free of other
Refinery imports so the logged model loads wherever its requirements do.
"""

from __future__ import annotations

import re
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel, PythonModelContext

_WORD = re.compile(r"\S+")


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of each entity in a predicted tag sequence (IOB2, IOE2, IOBES
    and BILOU read alike: a B/S/U or a change of type opens an entity; O or a new entity closes it)."""
    spans: list[tuple[str, int, int]] = []
    current: list[Any] | None = None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-") if "-" in tag else (tag, "", "")
        if current is not None and (prefix in ("O", "B", "S", "U") or kind != current[0]):
            spans.append((current[0], current[1], i))
            current = None
        if prefix in ("B", "S", "U", "I", "E", "L") and kind:
            if current is None:
                current = [kind, i]
            if prefix in ("S", "U", "E", "L"):
                spans.append((kind, current[1], i + 1))
                current = None
    return spans


class ServedEncoder(PythonModel):
    """A sequence-classification or token-classification model and its tokenizer, with the task's
    decision rule (thresholds, target scale) from the logged `model_config`."""

    def load_context(self, context: PythonModelContext) -> None:
        from transformers import (
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        self.config: dict[str, Any] = dict(context.model_config or {})
        path = context.artifacts["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        auto = (
            AutoModelForTokenClassification
            if self.config["kind"] == "token_classification"
            else AutoModelForSequenceClassification
        )
        self.model = auto.from_pretrained(path).eval()
        self.labels = [str(self.model.config.id2label[i]) for i in range(self.model.config.num_labels)]

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = _as_frame(model_input)
        texts = frame["text"].astype(str).tolist()
        pairs = frame["text_pair"].astype(str).tolist() if "text_pair" in frame.columns else None
        size = int(self.config.get("batch_size", 64))
        parts = [
            self._batch(texts[i : i + size], pairs[i : i + size] if pairs is not None else None)
            for i in range(0, len(texts), size)
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def _batch(self, texts: list[str], pairs: list[str] | None) -> pd.DataFrame:
        kind = self.config["kind"]
        if kind == "token_classification":
            return pd.DataFrame({"entities": [self._entities(text) for text in texts]})
        encoded = self.tokenizer(
            texts,
            pairs,
            truncation=self.config.get("truncation", "longest_first") if pairs is not None else True,
            max_length=int(self.config["max_length"]),
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self.model(**encoded).logits.float()
        if kind == "regression":
            scale = float(self.config.get("target_std", 1.0))
            shift = float(self.config.get("target_mean", 0.0))
            return pd.DataFrame({"prediction": (logits[:, 0] * scale + shift).numpy().astype(np.float64)})
        if kind == "multi_label":
            probs = torch.sigmoid(logits).numpy()
            thresholds = np.asarray(self.config["thresholds"], dtype=np.float64)
            chosen = probs >= thresholds
            return pd.DataFrame(
                {
                    "labels": [[self.labels[j] for j in np.flatnonzero(row)] for row in chosen],
                    "scores": [
                        [round(float(p), 4) for p in prob[row]]
                        for prob, row in zip(probs, chosen, strict=True)
                    ],
                }
            )
        best_prob, best_id = torch.softmax(logits, dim=-1).max(dim=-1)
        return pd.DataFrame(
            {"label": [self.labels[int(i)] for i in best_id], "score": best_prob.numpy().astype(np.float64)}
        )

    def _entities(self, text: str) -> list[dict[str, Any]]:
        words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
        if not words:
            return []
        encoded = self.tokenizer(
            [w for w, _, _ in words],
            is_split_into_words=True,
            truncation=True,
            max_length=int(self.config["max_length"]),
            return_tensors="pt",
        )
        with torch.inference_mode():
            probs = torch.softmax(self.model(**encoded).logits.float()[0], dim=-1).numpy()
        first: dict[int, int] = {}  # a word's first sub-token carries its tag (as in training)
        for position, word in enumerate(encoded.word_ids(0)):
            if word is not None and word not in first:
                first[word] = position
        kept = [w for w in range(len(words)) if w in first]  # words past max_length get no tag
        tags = [self.labels[int(probs[first[w]].argmax())] for w in kept]
        entities = []
        for kind, start, end in entity_spans(tags):
            span = kept[start:end]
            score = float(np.mean([probs[first[w]].max() for w in span]))
            begin, finish = words[span[0]][1], words[span[-1]][2]
            entities.append(
                {"type": kind, "text": text[begin:finish], "start": begin, "end": finish,
                 "start_token": span[0], "end_token": span[-1] + 1, "score": round(score, 4)}
            )  # fmt: skip
        return entities


def _as_frame(model_input: Any) -> pd.DataFrame:
    """The input rows as a DataFrame with `text` (and `text_pair`)."""
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            return model_input
        return model_input.rename(columns={model_input.columns[0]: "text"})
    if isinstance(model_input, str):
        return pd.DataFrame({"text": [model_input]})
    if isinstance(model_input, dict):
        return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in model_input.items()})
    return pd.DataFrame({"text": [str(t) for t in model_input]})


mlflow.models.set_model(ServedEncoder())
