"""Instruction and chat records as one canonical shape: a list of {role, content} messages.

Alpaca-style records (`instruction`, optional `input`, `output`) become system? / user /
assistant messages; chat records (`messages`) are kept as given. A classification dataset
becomes instruction records with `sft.from_classification` (text → instruction, label → output).
Split frames hold `messages` (JSON), `prompt` (the last user turn), `reference` (the last
assistant turn), `label` (for stratified splits), `source_file` and `source_row`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import DataConfig, SftConfig
from tasks.data.splitting import Splits, split_rows

ROLES = ("system", "user", "assistant")
NO_LABEL = "-"  # the label of free-form examples: one class, so splits are plain random ones


def record_format(frame: pd.DataFrame, cfg: SftConfig) -> str:
    """The record shape, "chat" or "instruction": as configured, or chat when messages are present."""
    if cfg.from_classification:
        return "instruction"
    if cfg.format != "auto":
        return cfg.format
    return "chat" if cfg.messages_field in frame.columns else "instruction"


def from_classification(frame: pd.DataFrame, data: DataConfig, cfg: SftConfig) -> pd.DataFrame:
    """Instruction records from a text/label table: the template around the text, the label as output."""
    out = frame.copy()
    texts = frame[data.text_column] if data.text_column in frame.columns else pd.Series([None] * len(frame))
    out[cfg.instruction_field] = [
        None if t is None else cfg.instruction_template.format(text=str(t).strip()) for t in texts
    ]
    labels = frame[data.label_column] if data.label_column in frame.columns else [None] * len(frame)
    out[cfg.output_field] = [None if v is None else str(v).strip() for v in labels]
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_list(value: Any) -> list[Any] | None:
    """A messages cell as a list: JSON lists arrive as lists, Parquet ones as arrays, CSV ones as text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return list(value) if isinstance(value, list | tuple) else None


def record_messages(row: dict[str, Any], fmt: str, cfg: SftConfig) -> list[dict[str, str]] | None:
    """One record as messages, or None when its required fields are missing or malformed."""
    if fmt == "chat":
        raw = _as_list(row.get(cfg.messages_field))
        if raw is None:
            return None
        messages = []
        for item in raw:
            if not isinstance(item, dict):
                return None
            messages.append({"role": str(item.get("role")), "content": str(item.get("content") or "")})
        return messages
    instruction, output = _text(row.get(cfg.instruction_field)), _text(row.get(cfg.output_field))
    if instruction is None or output is None:
        return None
    extra = _text(row.get(cfg.input_field))
    user = f"{instruction.strip()}\n\n{extra.strip()}" if extra and extra.strip() else instruction.strip()
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return [*system, {"role": "user", "content": user}, {"role": "assistant", "content": output.strip()}]


def role_problem(messages: Sequence[dict[str, str]] | None) -> str:
    """What is wrong with the order of roles, or "ok": system?, user/assistant turns, last assistant."""
    if messages is None:
        return "missing or malformed record"
    roles = [m["role"] for m in messages]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        return f"unknown role '{unknown[0]}'"
    turns = roles[1:] if roles[:1] == ["system"] else roles
    if not turns:
        return "no user/assistant turns"
    for i, role in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            return f"turn {i + 1} is '{role}', expected '{expected}'"
    if turns[-1] != "assistant":
        return "does not end with an assistant turn"
    return "ok"


def canonical_frame(frame: pd.DataFrame, data: DataConfig, cfg: SftConfig) -> pd.DataFrame:
    """Every record as messages plus the derived prompt / reference / label columns."""
    if cfg.from_classification:
        frame = from_classification(frame, data, cfg)
    fmt = record_format(frame, cfg)
    rows = frame.to_dict("records")
    messages = [record_messages(row, fmt, cfg) for row in rows]
    problems = [role_problem(m) for m in messages]

    def last(ms: list[dict[str, str]] | None, role: str) -> str | None:
        found = [m["content"] for m in ms or [] if m["role"] == role]
        return found[-1] if found else None

    labels = [
        str(row.get(data.label_column) or NO_LABEL).strip() if cfg.from_classification else NO_LABEL
        for row in rows
    ]
    return pd.DataFrame(
        {
            "messages": [json.dumps(m, ensure_ascii=False) if m is not None else None for m in messages],
            "prompt": [last(m, "user") for m in messages],
            "reference": [last(m, "assistant") for m in messages],
            "role_order": problems,
            "label": labels,
            "source_file": frame["source_file"].to_numpy(),
            "source_row": frame["source_row"].astype("int64").to_numpy(),
        }
    )


def split_sft(frames: dict[str, pd.DataFrame], data: DataConfig, cfg: SftConfig) -> Splits:
    """Canonical train / validation / test frames, with the classifier path's split rules."""
    pool = canonical_frame(frames["train"], data, cfg).drop(columns="role_order")
    test = canonical_frame(frames["test"], data, cfg).drop(columns="role_order") if "test" in frames else None
    return split_rows(pool, test, data, [])


def messages_of(frame: pd.DataFrame) -> list[list[dict[str, str]]]:
    """The `messages` column of a split frame, decoded; malformed records (None) are left out."""
    return [json.loads(text) for text in frame["messages"] if isinstance(text, str)]
