"""params.yaml parsing: typed sections, overrides, and one-line errors naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cli.main import parse_overrides
from tasks.core.config import ConfigError, Params, load_params


def test_repository_params_parse_and_match_defaults(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    assert params.data.label_column == "category"
    assert params.train.base_model == "minilm"
    assert params.gate.thresholds == {"accuracy": 0.85, "f1_macro": 0.80}
    assert params.register_.model_name == "banking77-intent"
    assert params.task == "sequence_classification"
    sections = {
        "task",
        "data",
        "validate",
        "sft",
        "preference",
        "multi_label",
        "token_classification",
        "tokenize",
        "train",
        "evaluate",
        "gate",
        "register",
        "cache",
        "sweep",
    }
    assert set(params.as_dict()) == sections


def test_overrides_replace_single_values(repo_root: Path) -> None:
    overrides = parse_overrides(["train.learning_rate=3e-5", "data.max_train_samples=500"])
    params = load_params(repo_root / "params.yaml", overrides)
    assert params.train.learning_rate == pytest.approx(3e-5)
    assert params.data.max_train_samples == 500
    assert params.train.batch_size == 32  # untouched


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'train\.learnig_rate'"):
        load_params(_write(tmp_path, "train:\n  learnig_rate: 0.1\n"))


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'trian'"):
        load_params(_write(tmp_path, "trian:\n  epochs: 1\n"))


def test_wrong_type_names_key_and_expected_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_params(_write(tmp_path, "train:\n  batch_size: large\n"))
    message = str(info.value)
    assert "'train.batch_size'" in message and "integer" in message and "'large'" in message
    assert "\n" not in message


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'data\.test_fraction'.*less than 1"):
        load_params(_write(tmp_path, "data:\n  test_fraction: 1.5\n"))


def test_literal_choice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'gate\.on_fail'.*'fail' or 'complete'"):
        load_params(_write(tmp_path, "gate:\n  on_fail: explode\n"))


def test_steps_strategy_needs_eval_steps(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.eval_steps is required"):
        load_params(_write(tmp_path, "train:\n  eval_strategy: steps\n"))


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_params(_write(tmp_path, "train:\n  epochs: [1\n"))
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["learning_rate"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["epochs=3"])


def test_override_into_a_scalar_is_refused(repo_root: Path) -> None:
    with pytest.raises(ConfigError, match="'train' is not a section|not a section"):
        load_params(repo_root / "params.yaml", {"train.epochs.x": 1})


def test_params_are_frozen() -> None:
    params = Params()
    with pytest.raises(ValueError, match="frozen"):
        params.train.epochs = 5  # type: ignore[misc]
