"""The search space of `sweep.space`: dotted `train:` / `tokenize:` keys and their ranges or choices.

Each key is checked once, before any trial: it must name a numeric or categorical setting of
`train:` or `tokenize:`, its range or choices must be well formed, and every bound or choice
must be a value params.yaml would accept there. Errors are one line naming `sweep.space.<key>`.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import optuna
from pydantic import BaseModel

from tasks.core.config import Params, TokenizeConfig, TrainConfig, apply_overrides, parse_params
from tasks.core.errors import ConfigError

SECTIONS: dict[str, type[BaseModel]] = {"train": TrainConfig, "tokenize": TokenizeConfig}
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a numeric range (int or float) or a list of choices."""

    key: str  # dotted, as in --set: train.learning_rate
    choices: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        """This setting's value for `trial`, from Optuna's sampler."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def _field_kinds(key: str) -> set[type]:
    """The scalar types the setting `key` takes (int, float, bool, str); empty when it is not one."""
    section, _, rest = key.partition(".")
    model: Any = SECTIONS.get(section)
    if model is None or not rest:
        return set()
    parts = rest.split(".")
    for part in parts[:-1]:  # a nested section, e.g. train.lora.r
        field = model.model_fields.get(part)
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return set()
        model = field.annotation
    field = model.model_fields.get(parts[-1])
    if field is None:
        return set()
    union = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)
    kinds: set[type] = set()
    for arg in typing.get_args(field.annotation) if union else (field.annotation,):
        if typing.get_origin(arg) is typing.Literal:
            kinds |= {type(value) for value in typing.get_args(arg)}
        elif arg in (int, float, bool, str):
            kinds.add(arg)
    return kinds


def _number(key: str, spec: dict[str, Any], bound: str) -> float:
    value = spec.get(bound)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"sweep.space.{key}: '{bound}' must be a number, got {value!r}")
    return float(value)


def parse_dimension(key: str, spec: Any) -> Dimension:
    """One `sweep.space` entry as a `Dimension`; a one-line error naming the key when malformed."""
    kinds = _field_kinds(key)
    if not kinds:
        raise ConfigError(
            f"sweep.space.{key}: not a numeric or categorical key of train: or tokenize: "
            "(e.g. train.learning_rate, train.batch_size, tokenize.max_length)"
        )
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep.space.{key}: expected {{low, high[, log, step]}} or {{choices: [...]}}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ConfigError(f"sweep.space.{key}: 'choices' must be a non-empty list, alone")
        return Dimension(key, choices=tuple(choices))
    unknown = set(spec) - RANGE_KEYS
    if unknown or not {"low", "high"} <= set(spec):
        raise ConfigError(
            f"sweep.space.{key}: a range needs 'low' and 'high' (optional 'log', 'step'), got {sorted(spec)}"
        )
    if not kinds & {int, float}:
        raise ConfigError(f"sweep.space.{key}: not numeric; give 'choices' instead of a range")
    low, high = _number(key, spec, "low"), _number(key, spec, "high")
    log, step = spec.get("log", False), spec.get("step")
    if not low < high:
        raise ConfigError(f"sweep.space.{key}: 'low' ({low:g}) must be below 'high' ({high:g})")
    if not isinstance(log, bool):
        raise ConfigError(f"sweep.space.{key}: 'log' must be true or false, got {log!r}")
    if log and (low <= 0 or step is not None):
        raise ConfigError(f"sweep.space.{key}: a log range needs 'low' > 0 and no 'step'")
    if step is not None and _number(key, spec, "step") <= 0:
        raise ConfigError(f"sweep.space.{key}: 'step' must be positive, got {step!r}")
    integer = float not in kinds
    if integer and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"sweep.space.{key}: an integer setting needs whole 'low' and 'high'")
    return Dimension(
        key, low=low, high=high, log=log, step=None if step is None else float(step), integer=integer
    )


def extremes(dimension: Dimension) -> list[Any]:
    """The values a dimension can take at its edges (every choice, or both bounds)."""
    if dimension.choices is not None:
        return list(dimension.choices)
    bounds = [dimension.low, dimension.high]
    return [int(b) for b in bounds] if dimension.integer else bounds


def parse_space(params: Params) -> list[Dimension]:
    """`sweep.space` as dimensions, each bound or choice checked against the params it would set."""
    if not params.sweep.space:
        raise ConfigError("sweep.space: empty; name at least one train: or tokenize: key to search")
    dimensions = [parse_dimension(key, spec) for key, spec in params.sweep.space.items()]
    for dimension in dimensions:
        for value in extremes(dimension):
            try:
                with_values(params, {dimension.key: value})
            except ConfigError as err:
                message = str(err).removeprefix("sweep: ")
                raise ConfigError(f"sweep.space.{dimension.key}: {value!r} is refused ({message})") from None
    if params.sweep.sampler == "grid":
        ranged = next((d.key for d in dimensions if d.choices is None), None)
        if ranged is not None:
            raise ConfigError(f"sweep.space.{ranged}: sampler grid needs 'choices', not a range")
    return dimensions


def with_values(params: Params, values: dict[str, Any]) -> Params:
    """`params` with the dotted `values` set, validated as params.yaml would be."""
    return parse_params(apply_overrides(params.as_dict(), values), "sweep")


def searches_tokenization(dimensions: list[Dimension]) -> bool:
    """Whether a trial changes how texts are tokenized (then it re-tokenizes, from the cache)."""
    return any(d.key.startswith("tokenize.") for d in dimensions)
