"""Text (or text-pair) / number tables as regression examples: the target as a float, the splits
stratified by quantile bins of the target.

Split frames hold `text`, optionally `text_pair`, `target` (float, in the data's own units), `label`
(the target's quantile bin, which the shared splitter stratifies on), `source_file` and `source_row`.
"""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import DataError
from tasks.data.splitting import Splits, split_rows
from tasks.task_types.classification.records import require_columns, text_columns

BINS = (
    5  # quantile bins of the target: enough to spread every level over the splits, few enough for tiny data
)


def as_number(value: object) -> float | None:
    """A target cell as a float: numbers and numeric text (`" 0.5"`, `"1e-3"`); None when it is not
    one (missing, a word, a boolean). Non-finite values (`inf`, `nan` written out) stay as floats."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def target_problem(value: object) -> str:
    """What is wrong with a target cell for regression: "ok", "missing", "not a number" or "not finite"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    number = as_number(value)
    if number is None:
        return "not a number"
    return "ok" if math.isfinite(number) else "not finite"


def bin_edges(targets: pd.Series, bins: int = BINS) -> np.ndarray:
    """Inner edges of the target's quantile bins (repeated quantiles of a few levels merged)."""
    quantiles = np.quantile(targets.to_numpy(dtype=np.float64), np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(quantiles)


def target_bins(targets: pd.Series, edges: np.ndarray) -> pd.Series:
    """Each target's quantile bin as a name (`bin 1` lowest): what the splits stratify on."""
    index = np.searchsorted(edges, targets.to_numpy(dtype=np.float64), side="right")
    return pd.Series([f"bin {i + 1}" for i in index], index=targets.index, dtype=object)


def _examples(frame: pd.DataFrame, cfg: DataConfig) -> pd.DataFrame:
    require_columns(frame, cfg)
    targets = frame[cfg.label_column].map(as_number).astype(np.float64)
    return pd.DataFrame(
        {
            **text_columns(frame, cfg),
            "target": targets,
            "source_file": frame["source_file"],
            "source_row": frame["source_row"].astype("int64"),
        }
    ).reset_index(drop=True)


def split_examples(frames: dict[str, pd.DataFrame], cfg: DataConfig, root: Path = Path()) -> Splits:
    """Map columns, bin the target by the train file's quantiles, take the test split (file or
    fraction, stratified by bin) and carve validation from train. The labels are the target's name."""
    pool = _examples(frames["train"], cfg)
    test = _examples(frames["test"], cfg) if "test" in frames else None
    bad = pool["target"].isna() | ~np.isfinite(pool["target"])
    if bad.any():  # the data contract refuses these first; a direct caller gets one line too
        row = pool.loc[bad.idxmax()]
        raise DataError(
            f"{row['source_file']}:{row['source_row']}: column '{cfg.label_column}' (data.label_column) "
            "is not a finite number"
        )
    edges = bin_edges(pool["target"])
    pool = pool.assign(label=target_bins(pool["target"], edges))
    if test is not None:
        test = test.assign(label=target_bins(test["target"], edges))
    return split_rows(pool, test, cfg, [cfg.label_column])


def target_scale(targets: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the train targets, the scale the model learns in (std 1.0
    for a constant target, which the data contract refuses, so nothing divides by zero)."""
    values = np.asarray(targets, dtype=np.float64)
    mean, std = float(values.mean()), float(values.std())
    return mean, std if std > 0.0 and math.isfinite(std) else 1.0
