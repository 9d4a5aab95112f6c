"""The compare step: score the registered `champion` on this run's test split, compare it with the challenger.

The champion is read from the registry (the effective tracking URI); the task type scores it on
the same test examples as the challenger and measures the paired statistics, which go to
`comparison/comparison.json` for the gate. With no champion the file says so and the thresholds
alone decide. Only a champion Refinery registered is loaded: loading a model runs its code.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tasks.comparison.champion import ChampionComparison
from tasks.comparison.overlap import Overlap, by_data_hashes, by_rows
from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.files import read_json, write_json
from tasks.core.hashing import code_version
from tasks.core.layout import RunLayout
from tasks.core.results import content_key, keep_result, restore_result
from tasks.data.splitting import row_hashes
from tasks.lineage.data import data_hashes
from tasks.lineage.record import LINEAGE_ROWS
from tasks.registry.idempotency import WEIGHTS_TAG
from tasks.registry.promotion import CHAMPION, champion_version
from tasks.registry.tracking import effective_tracking_uri, store_exists, tracking_to
from tasks.steps.evaluation import recorded_key
from tasks.steps.stage import STEP_LOGGER
from tasks.task_types import task_type_for

COMPARISONS = "compare"  # the comparisons' folder under `evaluate.cache_dir`
SPLITS_ARTIFACTS = "splits"  # where a run's split files are logged (tasks.registry.registration.run_files)


def champion_overlap(
    client: MlflowClient, tags: dict[str, str], params: Params, layout: RunLayout
) -> Overlap:
    """How many of this run's test rows the champion trained on and this run did not: by the row
    hashes its run logged (`splits/train_rows.txt`), else by its recorded data hashes."""
    test_hashes = row_hashes(pd.read_parquet(layout.splits_dir / "test.parquet"))
    run_id = tags.get("mlflow_run_id")
    if run_id:
        with tempfile.TemporaryDirectory(prefix="refinery-champion-rows-") as tmp:
            try:
                path = client.download_artifacts(run_id, f"{SPLITS_ARTIFACTS}/{layout.train_rows.name}", tmp)
            except (MlflowException, OSError):
                path = None  # a champion logged before row hashes existed
            if path is not None:
                champion_rows = set(Path(path).read_text(encoding="utf-8").split())
                own = layout.train_rows
                own_rows = set(own.read_text(encoding="utf-8").split()) if own.is_file() else set()
                return by_rows(test_hashes, champion_rows, own_rows)
    return by_data_hashes(len(test_hashes), data_hashes(params.data).test, tags)


log = logging.getLogger(STEP_LOGGER)
REGISTERED_BY_REFINERY = "gate.decision"  # a tag the register step sets on every version it creates


def require_registered_by_refinery(name: str, version: str, tags: dict[str, str]) -> None:
    """Load only a champion Refinery registered (its `gate.decision` tag): loading a model runs its
    code (an MLflow "model from code", as the adapter format is), so a version registered by hand
    is never loaded on its own."""
    if REGISTERED_BY_REFINERY not in tags:
        raise RefineryError(
            f"compare: '{CHAMPION}' of {name} is version {version}, which Refinery did not register "
            f"(no '{REGISTERED_BY_REFINERY}' tag) and which would run its own code when loaded; "
            f"promote a version Refinery registered (`refinery promote {name} --version N`)"
        )


def comparison_key(
    params: Params, layout: RunLayout, client: MlflowClient, version: str, tags: dict[str, str]
) -> str:
    """What makes two comparisons the same: the challenger's evaluation (weights, test split,
    params, code), the champion (version, its weights and run), the comparison settings and code."""
    source = client.get_model_version(params.register_.model_name, version).source
    champion = [version, tags.get(WEIGHTS_TAG), tags.get("mlflow_run_id"), source]
    code = code_version(
        *sorted(Path(__file__).parents[1].joinpath("comparison").rglob("*.py")), Path(__file__)
    )
    return content_key(
        recorded_key(params, layout), champion, params.gate.champion.model_dump(mode="json"), code
    )


def run_step(params: Params, layout: RunLayout) -> dict[str, Any]:
    """Compare with the champion when there is one; write `comparison/comparison.json` either way."""
    task_type = task_type_for(params)
    cfg, name = params.gate.champion, params.register_.model_name
    layout.comparison_dir.mkdir(parents=True, exist_ok=True)
    uri = effective_tracking_uri(params.register_)
    comparison = None
    if store_exists(uri):
        with tracking_to(uri) as client:  # models:/ URIs resolve against this registry
            found = champion_version(client, name)
            if found is not None:
                version, tags = found
                require_registered_by_refinery(name, version, tags)
                key = comparison_key(params, layout, client, version, tags)
                cache = Path(params.evaluate.cache_dir) / COMPARISONS
                if restore_result(cache, key, layout.comparison_dir):
                    log.info("compare: reused comparison %s (same challenger, champion v%s)", key, version)
                    return read_json(layout.comparison_json)
                stats = task_type.compare(params, layout, f"models:/{name}/{version}")
                lineage = {key: tags[key] for key in LINEAGE_ROWS if key in tags}
                overlap = champion_overlap(client, tags, params, layout)
                comparison = ChampionComparison.build(version, lineage, stats, cfg, overlap)
                write_json(layout.comparison_json, comparison.to_dict())
                keep_result(cache, key, layout.comparison_dir)
    if comparison is None:
        reason = f"no '{CHAMPION}' alias on {name}"
        layout.champion_predictions_csv.unlink(missing_ok=True)
        write_json(layout.comparison_json, {"champion_version": None, "reason": reason})
        return {"champion_version": None, "reason": reason}
    return comparison.to_dict()


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
