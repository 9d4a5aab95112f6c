"""Comparing a causal-LM challenger with the registered champion on the same held-out prompts.

The champion (merged, transformers flavor; or adapter + base, pyfunc) answers the evaluate step's
prompts rendered with its own chat template, decoded greedily; both models' answers are scored per
example (exact match, ROUGE-L) and compared in pairs, with guard rails per slice when a slice
column is set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.comparison.champion import ComparisonStats
from tasks.comparison.slices import slice_values
from tasks.comparison.statistics import compare_scores
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.task_types.causal_lm.generation import generate_answers, generation_rows, score_generations
from tasks.task_types.causal_lm.templating import with_chat_defaults


def load_champion_lm(model_uri: str) -> tuple[Any, Any]:
    """The champion causal LM and its tokenizer: merged (transformers flavor) or adapter (pyfunc)."""
    import mlflow.pyfunc
    import mlflow.transformers
    import torch
    from mlflow.models import get_model_info

    if "transformers" in get_model_info(model_uri).flavors:
        components = mlflow.transformers.load_model(model_uri, return_type="components")
        model, tokenizer = components["model"], components.get("tokenizer")
    else:  # tasks/task_types/causal_lm/adapter_model.py: the base model with the logged LoRA adapter
        wrapper = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
        model, tokenizer = getattr(wrapper, "model", None), getattr(wrapper, "tokenizer", None)
    if model is None or tokenizer is None or not type(model).__name__.endswith("ForCausalLM"):
        raise RefineryError(
            f"{model_uri} ({type(model).__name__}) is not a causal LM with a tokenizer: cannot compare it "
            "with this run; move the 'champion' alias or use another register.model_name"
        )
    model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return model, with_chat_defaults(tokenizer, f"the tokenizer of {model_uri}")


def compare_generations(params: Params, layout: RunLayout, model_uri: str, metric: str) -> ComparisonStats:
    """Generate with the champion at `model_uri` on the evaluate step's prompts; compare the scores."""
    cfg = params.gate.champion
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    rows = generation_rows(test, params.evaluate)
    references = [str(r) for r in rows["reference"]]
    text = {"prompt": str, "reference": str, "output": str}
    mine = pd.read_csv(layout.generations_csv, keep_default_na=False, dtype=text)
    if mine["reference"].tolist() != references:
        raise RefineryError(
            f"{layout.generations_csv}: not the generations of this run's test split; run evaluate again"
        )
    model, tokenizer = load_champion_lm(model_uri)
    outputs = generate_answers(model, tokenizer, rows, params.evaluate)
    _, champion_scores = score_generations(outputs, references)
    _, challenger_scores = score_generations(mine["output"].tolist(), references)
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "prompt": rows["prompt"].to_numpy(),
            "reference": references,
            "output": outputs,
            "exact_match": champion_scores["exact_match"],
            "rouge_l": np.round(champion_scores["rouge_l"], 4),
            "source_file": rows["source_file"].to_numpy(),
            "source_row": rows["source_row"].to_numpy(),
        }
    ).to_csv(layout.champion_predictions_csv, index=False)
    groups = slice_values(rows, cfg.slice_column, params.data) if cfg.slice_column else None
    boot, test_result, deltas = compare_scores(
        {k: np.asarray(v) for k, v in champion_scores.items()},
        {k: np.asarray(v) for k, v in challenger_scores.items()},
        groups,
        cfg,
        metric,
    )
    return ComparisonStats(boot, test_result, deltas, cfg.slice_column or "slice", metric)
