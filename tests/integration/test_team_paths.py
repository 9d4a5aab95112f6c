"""A served deployment run whose overrides point outside the configured roots ends at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import ConfigError
from tasks.core.roots import ROOTS_ENV
from tests.integration.conftest import tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated", "prefect_api")]


def test_an_override_outside_the_roots_is_refused_before_any_step(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.finetune import finetune

    params = tiny_params(tmp_path, tiny_base_model, sample_csv)
    monkeypatch.setenv(ROOTS_ENV, str(tmp_path))
    secret = tmp_path.parent / "outside" / "secret.csv"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("text,category\nthe password is hunter2,x\n", encoding="utf-8")
    workdir = tmp_path / "runs" / "r1"

    with pytest.raises(ConfigError, match=r"^'data.train_path' = '.*secret.csv' is outside the folders"):
        finetune(str(params), {"data.train_path": str(secret)}, str(workdir))
    with pytest.raises(ConfigError, match=r"^'workdir' = '/tmp/elsewhere' is outside the folders"):
        finetune(str(params), {}, "/tmp/elsewhere")

    assert not workdir.exists() and not Path("/tmp/elsewhere").exists()
