"""Continued fine-tuning from the registry: `train.base_model: models:/tiny-intent@champion` trains
from that version's weights, pinned at the run's start; lineage, `explain` and `reproduce` name it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from flows.finetune import finetune
from tasks.cli.main import main
from tasks.core.config import Params
from tasks.core.errors import ModelSourceError
from tasks.core.layout import RunLayout
from tasks.models.base_models import base_model_dir, tokenizer_fingerprint, weights_fingerprint
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types import load_task_params
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_api")]

MODEL, CONTINUED = "tiny-intent", "tiny-intent-continued"
FROM_CHAMPION = f"models:/{MODEL}@champion"
PARAMETER = "bert.encoder.layer.0.attention.self.query.weight"


@dataclass(frozen=True)
class Chain:
    """v1 of tiny-intent (champion), then tiny-intent-continued v1 trained from it."""

    root: Path
    uri: str
    base_model: Path
    continued: dict[str, Any]


def _params(root: Path, base_model: Path | str, train_csv: Path, name: str, **register: Any) -> Path:
    """The tiny params (stores and caches under `root`), kept as `params-<name>.yaml`."""
    path = tiny_params(root, Path(base_model), train_csv, train={"max_steps": 2}, register=register)
    return path.rename(root / f"params-{name}.yaml")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("continued")
    train_csv = root / "train.csv"
    banking_sample(per_class=20).to_csv(train_csv, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(root)  # ./mlruns, the model cache and the reproduction's runs/ land here
        first = _params(root, tiny_base_model, train_csv, "v1", promotion="auto")
        finetune(params_path=str(first), workdir=str(root / "v1"))
        second = _params(root, FROM_CHAMPION, train_csv, "continued", model_name=CONTINUED)
        continued = finetune(params_path=str(second), workdir=str(root / "continued"))
        yield Chain(root, f"sqlite:///{root / 'mlflow.db'}", tiny_base_model, continued)


def _params_of(chain: Chain, name: str) -> Params:
    return load_task_params(chain.root / f"params-{name}.yaml")


def test_the_run_starts_from_the_champions_weights_and_tokenizer(chain: Chain) -> None:
    layout = RunLayout(chain.root / "continued")
    assert json.loads(layout.base_model_pin.read_text())["version"] == "1"
    base = base_model_dir(_params_of(chain, "continued"), layout)
    loaded = load_file(str(base / "model.safetensors"))[PARAMETER]
    v1 = load_file(str(chain.root / "v1" / "model" / "model.safetensors"))[PARAMETER]
    original = load_file(str(chain.base_model / "model.safetensors"))[PARAMETER]
    assert torch.equal(loaded, v1) and not torch.equal(loaded, original)  # v1's, trained, not the seed's
    text = "my card payment was declined"
    assert load_tokenizer(base)(text).input_ids == load_tokenizer(chain.base_model)(text).input_ids
    assert base.parent == chain.root / ".cache" / "refinery" / "models"  # one download, in the cache
    assert not [p for p in base.parent.iterdir() if ".staging-" in p.name]


def test_the_new_version_names_the_version_it_started_from(chain: Chain) -> None:
    assert chain.continued["registration"]["version"] == "1"
    tags = MlflowClient(tracking_uri=chain.uri).get_model_version(CONTINUED, "1").tags
    base = base_model_dir(_params_of(chain, "continued"), RunLayout(chain.root / "continued"))
    assert tags["base_model"] == FROM_CHAMPION and tags["base_model_version"] == f"{MODEL}/1"
    assert tags["base_model_hash"] == weights_fingerprint(base)
    assert tags["tokenizer_fingerprint"] == tokenizer_fingerprint(base)  # tokenized with v1's tokenizer
    card = RunLayout(chain.root / "continued").model_card.read_text()
    assert f"- `{FROM_CHAMPION}`: " in card and f"Continued from registered version `{MODEL}/1`" in card


def test_explain_shows_the_chain_across_versions(
    chain: Chain, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(chain.root)
    assert main(["explain", f"{CONTINUED}/1", "--tracking-uri", chain.uri]) == 0
    out = capsys.readouterr().out
    expected = f"Chain: {CONTINUED}/1 <- started from {MODEL}/1 <- base model {chain.base_model}"
    assert expected in out.splitlines()
    [row] = [line for line in out.splitlines() if line.strip().startswith("base model version")]
    assert row.split() == ["base", "model", "version", f"{MODEL}/1"]


def test_a_moved_alias_changes_neither_a_started_run_nor_a_reproduction(
    chain: Chain, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(chain.root)
    client = MlflowClient(tracking_uri=chain.uri)
    v1 = client.get_model_version(MODEL, "1")
    v2 = client.create_model_version(MODEL, v1.source, v1.run_id, tags={"model_weights_hash": "other"})
    client.set_registered_model_alias(MODEL, "champion", v2.version)
    try:
        params = _params_of(chain, "continued")
        pinned = RunLayout(chain.root / "continued")
        assert base_model_dir(params, pinned).name == f"registered-{v1.tags['model_weights_hash'][:24]}"
        fresh = RunLayout(chain.root / "fresh")
        assert base_model_dir(params, fresh).name == "registered-other"  # a new run: the alias now
        assert json.loads(fresh.base_model_pin.read_text())["version"] == str(v2.version)

        code = main(["reproduce", CONTINUED, "--version", "1", "--tracking-uri", chain.uri])
        assert code == 0, capsys.readouterr().out
        [run_dir] = (chain.root / "runs").glob(f"reproduce-{CONTINUED}-v1-*")
        assert json.loads(RunLayout(run_dir).base_model_pin.read_text())["version"] == "1"
        assert "Result: identical test metrics" in capsys.readouterr().out
    finally:
        client.set_registered_model_alias(MODEL, "champion", "1")


@pytest.mark.parametrize(
    ("base_model", "task", "message"),
    [
        ("models:/nope@champion", None, "names no registered model 'nope' in sqlite:///"),
        (f"models:/{MODEL}@nope", None, f"names no alias 'nope' of model '{MODEL}'"),
        (f"models:/{MODEL}/9", None, f"names no version 9 of model '{MODEL}'"),
        (f"models:/{MODEL}", None, "is not models:/NAME@ALIAS or models:/NAME/VERSION"),
        (FROM_CHAMPION, "causal_lm", "is a 'sequence_classification' model (version 1); task 'causal_lm'"),
    ],
)
def test_a_bad_registered_base_model_is_a_one_line_error(
    chain: Chain, base_model: str, task: str | None, message: str
) -> None:
    raw = _params_of(chain, "continued").as_dict()
    raw["train"]["base_model"] = base_model
    raw["task"] = task or raw["task"]
    params = Params.model_validate(raw)
    with pytest.raises(ModelSourceError) as error:
        base_model_dir(params)
    assert str(error.value).startswith(f"train.base_model: '{base_model}' ")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_unreachable_store_is_a_one_line_error(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    params = _params_of(chain, "continued")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'missing.db'}")  # team mode wins
    with pytest.raises(ModelSourceError, match=r"tracking store sqlite:///\S+missing.db does not exist"):
        base_model_dir(params)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(ModelSourceError, match=r"http://127.0.0.1:9 unreachable"):
        base_model_dir(params)
