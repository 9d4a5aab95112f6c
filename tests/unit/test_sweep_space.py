"""`sweep.space`: every key and range is checked before any trial, each error one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.cli.main import main as refinery
from tasks.core.config import ConfigError, parse_params
from tasks.sweeps.space import parse_space, searches_tokenization


def _params(space: dict[str, Any], **sweep: Any) -> Any:
    return parse_params({"sweep": {"space": space, **sweep}})


def test_the_params_yaml_space_parses_into_ranges_and_choices() -> None:
    dims = parse_space(_params({
        "train.learning_rate": {"low": 1e-5, "high": 5e-4, "log": True},
        "train.batch_size": {"choices": [16, 32]},
        "train.max_steps": {"low": 2, "high": 8, "step": 2},
        "tokenize.max_length": {"choices": [32, 64]},
        "train.lora.r": {"choices": [4, 8]},
    }))  # fmt: skip
    by_key = {d.key: d for d in dims}
    assert by_key["train.learning_rate"].log and not by_key["train.learning_rate"].integer
    assert by_key["train.max_steps"].integer and by_key["train.batch_size"].choices == (16, 32)
    assert searches_tokenization(dims)


@pytest.mark.parametrize(
    ("space", "sweep", "says"),
    [
        (
            {"train.learning_rat": {"low": 1e-5, "high": 1e-3}},
            {},
            "sweep.space.train.learning_rat: not a numeric",
        ),
        ({"evaluate.batch_size": {"choices": [8]}}, {}, "sweep.space.evaluate.batch_size: not a numeric"),
        ({"train.learning_rate": {"low": 1e-3, "high": 1e-5}}, {}, "'low' (0.001) must be below 'high'"),
        ({"train.learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, {}, "a log range needs 'low' > 0"),
        ({"train.learning_rate": {"low": "a", "high": 1e-3}}, {}, "'low' must be a number"),
        ({"train.learning_rate": {"min": 1e-5, "high": 1e-3}}, {}, "a range needs 'low' and 'high'"),
        ({"train.batch_size": {"choices": []}}, {}, "'choices' must be a non-empty list"),
        ({"train.batch_size": {"low": 8.5, "high": 32}}, {}, "an integer setting needs whole"),
        ({"train.batch_size": {"choices": [16, 0]}}, {}, "sweep.space.train.batch_size: 0 is refused"),
        ({"train.precision": {"low": 1, "high": 2}}, {}, "not numeric; give 'choices'"),
        ({"train.learning_rate": {"low": 1e-5, "high": 1e-3}}, {"sampler": "grid"}, "grid needs 'choices'"),
        ({"train.learning_rate": [1e-5, 1e-3]}, {}, "expected {low, high"),
        ({}, {}, "sweep.space: empty"),
    ],
)
def test_an_invalid_space_is_one_line_naming_the_key(
    space: dict[str, Any], sweep: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_space(_params(space, **sweep))
    message = str(raised.value)
    assert says in message and "\n" not in message
    assert message.startswith("sweep.space")


def test_refinery_sweep_refuses_an_invalid_space_in_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"sweep": {"space": {"train.learning_rat": {"low": 1e-5, "high": 1e-3}}}})
    )

    code = refinery(["sweep", "--params", str(params), "--trials", "2", "--workdir", str(tmp_path / "run")])

    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and err.startswith("error: sweep.space.train.learning_rat:")
    assert not (tmp_path / "run").exists()  # nothing read, nothing written
