"""`refinery run` / `sweep` start Prefect's temporary API with its telemetry off (offline, its failure
was an error line on every console), unless the user turned it on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.cli.main import main as refinery

ANALYTICS = "PREFECT_SERVER_ANALYTICS_ENABLED"


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_the_temporary_api_sends_no_telemetry_unless_asked(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "missing.yaml")  # refused before any Prefect start-up
    monkeypatch.delenv(ANALYTICS, raising=False)
    assert refinery([command, "--params", missing]) == 1
    assert os.environ[ANALYTICS] == "false"

    monkeypatch.setenv(ANALYTICS, "true")
    assert refinery([command, "--params", missing]) == 1
    assert os.environ[ANALYTICS] == "true"
