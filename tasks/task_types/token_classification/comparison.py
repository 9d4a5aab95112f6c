"""Comparing a token-classification challenger with the registered champion on the same test
sentences, both as served: the champion's pyfunc predicts entities for each sentence (its tokens
joined by spaces, which its whitespace split recovers), the challenger's predicted tags are read
into entities by the same rule (`served_encoder.entity_spans`); the true entities follow the
configured scoring (`token_classification.mode` / `scheme`).

The gated metric is micro entity F1: a paired bootstrap over sentences recomputes it for both
models from the resampled sentences' summed TP / FP / FN. McNemar on sentences tagged exactly
right; guard rails on entity recall per entity type (or on exact sentences per slice, when
`gate.champion.slice_column` is set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.comparison.champion import ComparisonStats
from tasks.comparison.slices import slice_values
from tasks.comparison.statistics import BootstrapResult, group_checks, mcnemar_pairs
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types.token_classification.schemes import Entity, count_matches, entity_sets, spans_as_tags

METRIC = "f1"
_CHUNK_CELLS = 4_000_000  # bound on (resamples x sentences) indices drawn at once


def _f1(counts: np.ndarray) -> np.ndarray:
    """Micro entity F1 of summed (..., 3) TP / FP / FN counts; 0 where nothing was found right."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=np.float64), where=tp > 0)


def paired_bootstrap_f1(
    champion: np.ndarray, challenger: np.ndarray, resamples: int, confidence: float, seed: int
) -> BootstrapResult:
    """Challenger minus champion micro entity F1 with a percentile interval: sentences resampled in
    pairs (the same indices for both, drawn as `statistics.paired_bootstrap_interval` draws them),
    F1 recomputed from each resample's summed per-sentence (TP, FP, FN) counts."""
    a, b = (np.asarray(x, dtype=np.float64) for x in (champion, challenger))
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
        raise ValueError("challenger: must be a non-empty (sentences, 3) array shaped like champion")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"resamples must be >= 1 and confidence in (0, 1), got {resamples}, {confidence}")
    rng, n = np.random.default_rng(seed), a.shape[0]
    chunk, deltas = max(1, _CHUNK_CELLS // n), []
    for start in range(0, resamples, chunk):
        index = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        deltas.append(_f1(b[index].sum(axis=1)) - _f1(a[index].sum(axis=1)))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.concatenate(deltas), [tail, 1.0 - tail])
    base_a, base_b = float(_f1(a.sum(axis=0))), float(_f1(b.sum(axis=0)))
    return BootstrapResult(METRIC, base_a, base_b, base_b - base_a, float(low), float(high), confidence,
                           resamples, seed)  # fmt: skip


def champion_entities(model_uri: str, texts: list[str]) -> list[set[Entity]]:
    """The entities (type, first token, last token + 1) the served model at `model_uri` finds."""
    import mlflow.pyfunc

    output = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"text": texts}))
    if not isinstance(output, pd.DataFrame) or "entities" not in output.columns or len(output) != len(texts):
        raise RefineryError(
            f"{model_uri} does not predict entities: cannot compare it with this token classifier; "
            "move the 'champion' alias or use another register.model_name"
        )
    return [
        {(str(e["type"]), int(e["start_token"]), int(e["end_token"])) for e in row}
        for row in output["entities"]
    ]


def served_entities(predicted: list[str]) -> list[set[Entity]]:
    """The entities the challenger's served model returns for its predicted tag sequences."""
    from tasks.models.served_encoder import entity_spans

    return [set(entity_spans(tags.split())) for tags in predicted]


def found_per_entity(truth: list[set[Entity]], found: list[set[Entity]]) -> tuple[np.ndarray, list[str]]:
    """For each true entity (sentence order, then position): 1 when found exactly, and its type."""
    ordered = [
        (e, f) for t, f in zip(truth, found, strict=True) for e in sorted(t, key=lambda x: (x[1], x[0]))
    ]
    return np.asarray([float(e in f) for e, f in ordered]), [e[0] for e, _ in ordered]


def compare_entities(params: Params, layout: RunLayout, model_uri: str) -> ComparisonStats:
    """Score the champion at `model_uri` on the test sentences; the paired statistics."""
    cfg, task = params.gate.champion, params.token_classification
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    mine = pd.read_csv(layout.predictions_csv, keep_default_na=False, dtype=str)
    if len(mine) != len(test):
        raise RefineryError(
            f"{layout.predictions_csv}: not the predictions of this run's test split; evaluate again"
        )
    truth = entity_sets([list(t) for t in test["tags"]], task.mode, task.scheme)
    theirs = champion_entities(model_uri, test["text"].tolist())
    ours = served_entities(mine["predicted"].tolist())
    counts_a, counts_b = count_matches(truth, theirs), count_matches(truth, ours)
    _write_champion_rows(layout, test, theirs, counts_a, task.scheme)
    boot = paired_bootstrap_f1(counts_a, counts_b, cfg.resamples, cfg.confidence, cfg.seed)
    exact_a, exact_b = (counts[:, 1:].sum(axis=1) == 0 for counts in (counts_a, counts_b))
    test_result = mcnemar_pairs(exact_a, exact_b)
    if cfg.slice_column:
        groups = slice_values(test, cfg.slice_column, params.data)
        checks = group_checks(exact_a.astype(float), exact_b.astype(float), groups, cfg)
        return ComparisonStats(boot, test_result, checks, cfg.slice_column, "exact_sentences")
    (found_a, types), (found_b, _) = found_per_entity(truth, theirs), found_per_entity(truth, ours)
    checks = group_checks(found_a, found_b, types, cfg) if types else []
    return ComparisonStats(boot, test_result, checks, "entity_type", "recall")


def _write_champion_rows(
    layout: RunLayout, test: pd.DataFrame, found: list[set[Entity]], counts: np.ndarray, scheme: str
) -> None:
    """The champion's predictions, in the columns of this run's predictions table."""
    predicted: list[Any] = [
        " ".join(spans_as_tags(sorted(f), len(t), scheme)) for f, t in zip(found, test["tokens"], strict=True)
    ]
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"tokens": test["text"], "tags": [" ".join(t) for t in test["tags"]], "predicted": predicted,
         "tp": counts[:, 0], "fp": counts[:, 1], "fn": counts[:, 2],
         "source_file": test["source_file"], "source_row": test["source_row"]}
    ).to_csv(layout.champion_predictions_csv, index=False)  # fmt: skip
