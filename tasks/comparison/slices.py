"""Guard-rail groups from the data: each test row's value in a column of its source file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.core.config import DataConfig
from tasks.core.errors import RefineryError
from tasks.data.reading import read_table


def slice_values(test: pd.DataFrame, column: str, data: DataConfig) -> list[str]:
    """Each test row's value in `column` of its source file (the splits keep only their own columns)."""
    values: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    for source, row in zip(test["source_file"], test["source_row"], strict=True):
        if source not in frames:
            # rows of a separate test file: its `test` split when it is a JSON object of splits
            split = "test" if data.test_path and Path(source) == Path(data.test_path) else "train"
            frame = read_table(Path(source), data.format, data.csv_delimiter, split=split)
            if column not in frame.columns:
                raise RefineryError(f"gate.champion.slice_column: column '{column}' not found in {source}")
            frames[source] = frame.set_index("source_row")
        values.append(str(frames[source].at[int(row), column]))
    return values
