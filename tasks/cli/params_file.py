"""A params file for people: every section and key of `Params`, each with its comment.

The comments come from the code that defines the keys (the section docstrings and the trailing
`# ...` of each field in tasks/core/config.py) and the allowed values of each choice, so a written
file explains itself and never drifts from what `refinery run --params` accepts.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel

from tasks.core.config import Params

_FIELD_COMMENT = re.compile(r"^    (\w+):[^#]*#\s*(.+)$")
_COMMENT_COLUMN = 40


def _source_comments(model: type[BaseModel]) -> dict[str, str]:
    """`name: type = default  # comment` lines of a model class: {name: comment}."""
    found = (_FIELD_COMMENT.match(line) for line in inspect.getsource(model).splitlines())
    return {m.group(1): m.group(2).strip() for m in found if m}


def _choices(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " | ".join(str(v) for v in get_args(annotation))
    return ""


def _scalar(value: Any) -> str:
    """One value in YAML flow style: `null`, `0.85`, `text`, `{accuracy: 0.85}`, `[q, v]`."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return dumped.removesuffix("\n...\n").strip()


def _line(indent: int, key: str, value: str, comment: str) -> str:
    text = f"{' ' * indent}{key}:{' ' + value if value else ''}"
    return f"{text:<{_COMMENT_COLUMN - 1}} # {comment}" if comment else text


def _model_lines(model: BaseModel, values: dict[str, Any], indent: int, notes: dict[str, str],
                 prefix: str) -> list[str]:  # fmt: skip
    """The keys of one (sub)section, nested models as indented blocks."""
    cls = type(model)
    comments = _source_comments(cls)
    lines: list[str] = []
    for name, info in cls.model_fields.items():
        key = info.alias or name
        path = f"{prefix}{key}"
        own = comments.get(name)
        comment = "; ".join(p for p in (notes.get(path), own, _allowed(info.annotation, own)) if p)
        child = getattr(model, name)
        if isinstance(child, BaseModel):
            doc = (type(child).__doc__ or "").strip().splitlines()[0]
            lines.append(_line(indent, key, "", comment or doc))
            lines += _model_lines(child, values[key], indent + 2, notes, f"{path}.")
        else:
            lines.append(_line(indent, key, _scalar(values[key]), comment))
    return lines


def _allowed(annotation: Any, comment: str | None) -> str:
    choices = _choices(annotation)
    return f"one of: {choices}" if choices and (comment is None or "|" not in comment) else ""


def commented_params(params: Params, header: list[str], notes: dict[str, str] | None = None) -> str:
    """The whole of `params` as YAML with a comment on each key; `notes` adds one per dotted key."""
    notes = notes or {}
    values = params.as_dict()
    lines = [f"# {line}" if line else "#" for line in header]
    for name, info in Params.model_fields.items():
        key = info.alias or name
        child = getattr(params, name)
        if isinstance(child, BaseModel):
            doc = (type(child).__doc__ or "").strip().splitlines()[0]
            lines += ["", _line(0, key, "", notes.get(key) or doc)]
            lines += _model_lines(child, values[key], 2, notes, f"{key}.")
        else:
            comment = "; ".join(p for p in (notes.get(key), _source_comments(Params).get(name)) if p)
            lines.append(_line(0, key, _scalar(values[key]), comment))
    return "\n".join(lines) + "\n"
