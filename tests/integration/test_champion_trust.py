"""The compare step never loads a champion that Refinery did not register (loading runs its code)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.core.config import parse_params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.steps.comparison import run_step

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]


def test_a_champion_registered_by_hand_is_refused_in_one_line(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("tiny-intent")
    client.create_model_version("tiny-intent", source=str(tmp_path / "someone-elses-model"))
    client.set_registered_model_alias("tiny-intent", "champion", "1")
    params = parse_params({"register": {"model_name": "tiny-intent", "tracking_uri": uri}})

    with pytest.raises(RefineryError) as raised:
        run_step(params, RunLayout(tmp_path / "run"))

    message = str(raised.value)
    assert "\n" not in message and "version 1, which Refinery did not register" in message
    assert "refinery promote tiny-intent --version N" in message
