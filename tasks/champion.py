"""The compare step: score the registered `champion` on this run's test split, compare it with the challenger.

The champion is read from the registry (the effective tracking URI) as its own model and
tokenizer (MLflow transformers flavor), tokenized with the run's rule (truncation at the run's
`max_length`) and scored with the same `tasks.evaluation.predict`. A causal-LM champion (merged,
or adapter + base) answers the same held-out prompts, rendered with its own chat template and
decoded greedily as in the evaluate step, and both models' generations are scored per example
(exact match, ROUGE-L). The paired comparison goes to `comparison/comparison.json`, which the
gate reads; with no champion the file says so and the thresholds alone decide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tasks.comparison import (
    BootstrapResult,
    ChampionComparison,
    ClassDelta,
    McNemarResult,
    compare_predictions,
    compare_scores,
)
from tasks.config import ChampionGateConfig, Params
from tasks.data import read_table
from tasks.errors import RefineryError
from tasks.gate_report import LINEAGE_ROWS
from tasks.layout import RunLayout
from tasks.promotion import CHAMPION, aliases_of
from tasks.tokenization import META_FILE
from tasks.tracking import effective_tracking_uri, tracking_to

_SQLITE = "sqlite:///"


def store_exists(uri: str) -> bool:
    """False for a SQLite store whose file is missing: MLflow would create an empty one."""
    return not uri.startswith(_SQLITE) or Path(uri.removeprefix(_SQLITE).split("?")[0]).is_file()


def champion_version(client: MlflowClient, name: str) -> tuple[str, dict[str, str]] | None:
    """The version `champion` points at and its tags, or None (no model, or no such alias)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases_of(model).get(CHAMPION)
    if version is None:
        return None
    tags = dict(client.get_model_version(name, version).tags)
    run_id = client.get_model_version(name, version).run_id
    return version, {**tags, "mlflow_run_id": tags.get("mlflow_run_id") or str(run_id)}


def score_champion(
    model_uri: str, texts: list[str], max_length: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted label names and confidences of the model at `model_uri`, with its own tokenizer."""
    import mlflow.transformers
    from datasets import Dataset

    from tasks.evaluation import predict

    components = mlflow.transformers.load_model(model_uri, return_type="components")
    model, tokenizer = components["model"], components["tokenizer"]
    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise RefineryError(
            f"{model_uri} ({type(model).__name__}) is not a sequence classifier: cannot compare it with "
            "this run; move the 'champion' alias or use another register.model_name"
        )
    limit = int(getattr(model.config, "max_position_embeddings", max_length) or max_length)
    encoded = tokenizer(texts, truncation=True, max_length=min(max_length, limit))
    predictions, confidence = predict(model, tokenizer, Dataset.from_dict(dict(encoded)), batch_size)
    names = np.asarray([str(model.config.id2label[i]) for i in range(model.config.num_labels)], dtype=object)
    return names[predictions], confidence


def slice_values(test: pd.DataFrame, column: str, params: Params) -> list[str]:
    """Each test row's value in `column` of its source file (the splits keep only text and label)."""
    values: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    for source, row in zip(test["source_file"], test["source_row"], strict=True):
        if source not in frames:
            frame = read_table(Path(source), params.data.format, params.data.csv_delimiter)
            if column not in frame.columns:
                raise RefineryError(f"gate.champion.slice_column: column '{column}' not found in {source}")
            frames[source] = frame.set_index("source_row")
        values.append(str(frames[source].at[int(row), column]))
    return values


def compare_with(params: Params, layout: RunLayout, version: str, tags: dict[str, str]) -> ChampionComparison:
    """Score champion `version` on the test split and compare it with this run's predictions."""
    cfg = params.gate.champion
    labels: list[str] = json.loads((layout.splits_dir / "labels.json").read_text(encoding="utf-8"))
    label_ids = {name: i for i, name in enumerate(labels)}
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    mine = pd.read_csv(layout.predictions_csv, keep_default_na=False)
    max_length = int(json.loads((layout.tokenized_dir / META_FILE).read_text(encoding="utf-8"))["max_length"])
    uri = f"models:/{params.register_.model_name}/{version}"
    names, confidence = score_champion(uri, test["text"].tolist(), max_length, params.evaluate.batch_size)
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    champion_rows = test[["text", "label", "source_file", "source_row"]].assign(
        prediction=names, confidence=np.round(confidence, 4)
    )
    champion_rows.to_csv(layout.champion_predictions_csv, index=False)
    references = test["label_id"].to_numpy(dtype=np.int64)
    challenger = np.asarray([label_ids.get(str(n), -1) for n in mine["prediction"]], dtype=np.int64)
    champion = np.asarray([label_ids.get(str(n), -1) for n in names], dtype=np.int64)  # unknown: wrong
    groups = (
        slice_values(test, cfg.slice_column, params)
        if cfg.slice_column
        else test["label"].astype(str).tolist()
    )
    boot, test_result, deltas = compare_predictions(
        references, champion, challenger, len(labels), groups, cfg, params.champion_metric
    )
    return _comparison(version, tags, cfg, (boot, test_result, deltas), "class", "recall")


def load_champion_lm(model_uri: str) -> tuple[Any, Any]:
    """The champion causal LM and its tokenizer: merged (transformers flavor) or adapter (pyfunc)."""
    import mlflow.pyfunc
    import mlflow.transformers
    import torch
    from mlflow.models import get_model_info

    from tasks.sft_tokenization import with_chat_defaults

    if "transformers" in get_model_info(model_uri).flavors:
        components = mlflow.transformers.load_model(model_uri, return_type="components")
        model, tokenizer = components["model"], components.get("tokenizer")
    else:  # tasks/adapter_model.py: the base model with the logged LoRA adapter
        wrapper = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
        model, tokenizer = getattr(wrapper, "model", None), getattr(wrapper, "tokenizer", None)
    if model is None or tokenizer is None or not type(model).__name__.endswith("ForCausalLM"):
        raise RefineryError(
            f"{model_uri} ({type(model).__name__}) is not a causal LM with a tokenizer: cannot compare it "
            "with this run; move the 'champion' alias or use another register.model_name"
        )
    model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return model, with_chat_defaults(tokenizer, f"the tokenizer of {model_uri}")


def compare_generations(
    params: Params, layout: RunLayout, version: str, tags: dict[str, str]
) -> ChampionComparison:
    """Generate with champion `version` on the evaluate step's prompts and compare per-example scores."""
    from tasks.generation import generate_answers, generation_rows, score_generations

    cfg, metric = params.gate.champion, params.champion_metric
    rows = generation_rows(pd.read_parquet(layout.splits_dir / "test.parquet"), params.evaluate)
    references = [str(r) for r in rows["reference"]]
    text = {"prompt": str, "reference": str, "output": str}
    mine = pd.read_csv(layout.generations_csv, keep_default_na=False, dtype=text)
    if mine["reference"].tolist() != references:
        raise RefineryError(
            f"{layout.generations_csv}: not the generations of this run's test split; run evaluate again"
        )
    model, tokenizer = load_champion_lm(f"models:/{params.register_.model_name}/{version}")
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
    groups = slice_values(rows, cfg.slice_column, params) if cfg.slice_column else None
    boot, test_result, deltas = compare_scores(
        {k: np.asarray(v) for k, v in champion_scores.items()},
        {k: np.asarray(v) for k, v in challenger_scores.items()},
        groups,
        cfg,
        metric,
    )
    return _comparison(version, tags, cfg, (boot, test_result, deltas), "slice", metric)


def _comparison(
    version: str,
    tags: dict[str, str],
    cfg: ChampionGateConfig,
    result: tuple[BootstrapResult, McNemarResult, list[ClassDelta]],
    groups_without_slices: str,
    group_metric: str,
) -> ChampionComparison:
    """The comparison record: the statistics, the champion's lineage tags and the limits applied."""
    boot, test_result, deltas = result
    return ChampionComparison(
        champion_version=version,
        champion_tags={key: tags[key] for key in LINEAGE_ROWS if key in tags},
        bootstrap=boot,
        mcnemar=test_result,
        groups=deltas,
        group_by=cfg.slice_column or groups_without_slices,
        min_delta=cfg.min_delta,
        max_class_drop=cfg.max_class_drop,
        group_metric=group_metric,
    )


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Compare with the champion when there is one; write `comparison/comparison.json` either way."""
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    uri = effective_tracking_uri(params.register_)
    comparison = None
    compare = compare_with if params.task == "sequence_classification" else compare_generations
    if store_exists(uri):
        with tracking_to(uri) as client:  # models:/ URIs resolve against this registry
            found = champion_version(client, params.register_.model_name)
            comparison = compare(params, layout, *found) if found else None
    if comparison is None:
        reason = f"no '{CHAMPION}' alias on {params.register_.model_name}"
        layout.champion_predictions_csv.unlink(missing_ok=True)
        layout.comparison_json.write_text(json.dumps({"champion_version": None, "reason": reason}))
        return {"champion_version": None, "reason": reason}
    layout.comparison_json.write_text(json.dumps(comparison.to_dict(), indent=2, sort_keys=True))
    return comparison.to_dict()


if __name__ == "__main__":
    from tasks.stage import stage_main

    stage_main(run_step)
