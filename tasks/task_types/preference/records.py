"""Preference records as one canonical shape: prompt messages, a chosen and a rejected answer.

Plain records hold `prompt`, `chosen` and `rejected` strings; conversational ones hold `chosen`
and `rejected` as message lists ending on the assistant answer, with the turns before it the
same in both, and an optional shared `prompt` (a string or a message list) put in front.
Split frames hold `messages` (prompt turns + the chosen answer, JSON: what the SFT generation
code prompts with), `prompt_messages` (JSON), `prompt` (the last user turn), `chosen`/`reference`,
`rejected`, `problem` ("ok" or what is malformed), `same_prompt`, `label`, `source_file`, `source_row`.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from tasks.core.config import DataConfig, PreferenceConfig
from tasks.data.splitting import Splits, split_rows
from tasks.task_types.causal_lm.records import NO_LABEL, _as_list, role_problem

Messages = list[dict[str, str]]


def _messages(value: Any) -> Messages | None:
    """A cell as messages: a message list, a JSON text of one, or None."""
    raw = _as_list(value)
    if raw is None or not all(isinstance(m, dict) for m in raw):
        return None
    return [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in raw]


def message_list(text: str) -> Messages | None:
    """A text that is a JSON message list (a CSV cell) as messages; None for any other text."""
    return _messages(text) if text.lstrip().startswith("[") else None


def _prompt_turns(value: Any) -> Messages | None:
    """The shared prompt: a user turn from a string, or a message list; [] when absent."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return message_list(value) or [{"role": "user", "content": value.strip()}]
    return _messages(value)


def _answer(value: Any) -> tuple[Messages | None, str | None]:
    """An answer cell as (turns before the answer, answer text); plain strings have no turns."""
    if isinstance(value, str) and message_list(value) is None:
        return [], value.strip()
    turns = _messages(value)
    if not turns or turns[-1]["role"] != "assistant":
        return None, None
    return turns[:-1], turns[-1]["content"].strip()


def pair_record(row: dict[str, Any], cfg: PreferenceConfig) -> dict[str, Any]:
    """One raw row as prompt turns, both answers, and what (if anything) is wrong with it."""
    prompt = _prompt_turns(row.get(cfg.prompt_field))
    chosen_turns, chosen = _answer(row.get(cfg.chosen_field))
    rejected_turns, rejected = _answer(row.get(cfg.rejected_field))
    same_prompt = (
        "ok" if chosen_turns == rejected_turns else "chosen and rejected have different prompt turns"
    )
    turns = None if prompt is None or chosen_turns is None else [*prompt, *chosen_turns]
    problem = "ok"
    if turns is None or chosen is None or rejected is None or rejected_turns is None:
        problem = "missing or malformed prompt, chosen or rejected"
    elif not turns:
        problem = "no prompt: give the prompt field or prompt turns in chosen/rejected"
    else:
        problem = role_problem([*turns, {"role": "assistant", "content": chosen}])
    ok = problem == "ok"
    users = [m["content"] for m in turns or [] if m["role"] == "user"]
    return {
        "prompt_messages": json.dumps(turns, ensure_ascii=False) if ok else None,
        "messages": json.dumps([*(turns or []), {"role": "assistant", "content": chosen}], ensure_ascii=False)
        if ok
        else None,
        "prompt": users[-1].strip() if users else None,
        "chosen": chosen,
        "rejected": rejected,
        "problem": problem,
        "same_prompt": same_prompt if chosen_turns is not None and rejected_turns is not None else "ok",
    }


def canonical_pairs(frame: pd.DataFrame, cfg: PreferenceConfig) -> pd.DataFrame:
    """Every raw row as a canonical pair (malformed ones with None fields and their problem)."""
    records = [pair_record(row, cfg) for row in frame.to_dict("records")]
    columns = ["prompt_messages", "messages", "prompt", "chosen", "rejected", "problem", "same_prompt"]
    out = pd.DataFrame(records, columns=columns)
    out["reference"] = out["chosen"]
    out["label"] = NO_LABEL
    out["source_file"] = frame["source_file"].to_numpy()
    out["source_row"] = frame["source_row"].astype("int64").to_numpy()
    return out


def split_pairs(frames: dict[str, pd.DataFrame], data: DataConfig, cfg: PreferenceConfig) -> Splits:
    """Canonical train / validation / test pairs, with the split rules of every task type."""
    drop = ["problem", "same_prompt"]
    pool = canonical_pairs(frames["train"], cfg).drop(columns=drop)
    test = canonical_pairs(frames["test"], cfg).drop(columns=drop) if "test" in frames else None
    return split_rows(pool, test, data, [])


def pairs_of(frame: pd.DataFrame) -> list[tuple[Messages, str, str]]:
    """(prompt turns, chosen, rejected) of a split frame's well-formed pairs."""
    return [
        (json.loads(p), str(c), str(r))
        for p, c, r in zip(frame["prompt_messages"], frame["chosen"], frame["rejected"], strict=True)
        if isinstance(p, str)
    ]
