"""The Great Expectations suite for preference pairs (`task: preference`).

The shared machinery (tasks/validation/suite.py) on the canonical pairs: required fields,
well-formed records, non-empty chosen and rejected answers that differ, the same prompt turns in
both answers (conversational), duplicate pairs, and across files the train/test leakage of
prompts. Then, after templating, the share of pairs cut at `preference.max_length` and of prompts
cut at `preference.max_prompt_length`. Every offender is reported with its file and row.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import great_expectations.expectations as gxe
import pandas as pd

from tasks.core.config import Params
from tasks.models.base_models import base_model_dir
from tasks.task_types.causal_lm.templating import load_chat_tokenizer
from tasks.task_types.preference.records import canonical_pairs, message_list, pairs_of
from tasks.task_types.preference.tokenization import encode_pair, pair_max_length
from tasks.validation.report import ValidationResult
from tasks.validation.suite import (
    Batch,
    Check,
    Limit,
    duplicates_limit,
    file_batch,
    templated_result,
    visible_text,
)

_SHOWN = [
    "problem",
    "same_prompt",
    "chosen",
    "rejected",
    "answers_differ",
    "pair",
    "total_tokens",
    "prompt_tokens",
]


def required_fields(params: Params, frame: pd.DataFrame) -> dict[str, str]:
    """The fields a record needs, by the params key that names them (the prompt is optional when
    the answers are message lists that carry it)."""
    cfg = params.preference
    fields = {"preference.chosen_field": cfg.chosen_field, "preference.rejected_field": cfg.rejected_field}
    first = frame[cfg.chosen_field].dropna().head(1).tolist() if cfg.chosen_field in frame.columns else []
    conversational = bool(first) and (not isinstance(first[0], str) or message_list(first[0]) is not None)
    return fields if conversational else {"preference.prompt_field": cfg.prompt_field, **fields}


def pair_batch(key: str, raw: pd.DataFrame, params: Params, tokenizer: Any, max_length: int) -> Batch:
    """The canonical pairs of one file, with the columns the expectations read; a required field
    the file lacks is absent here too (its presence check fails), one it has under another name
    is copied in."""
    pairs = canonical_pairs(raw, params.preference)
    chosen, rejected = pairs["chosen"].map(visible_text), pairs["rejected"].map(visible_text)
    pairs = pairs.assign(chosen=chosen.fillna(""), rejected=rejected.fillna(""))
    pairs["answers_differ"] = [
        c != r or not c for c, r in zip(pairs["chosen"], pairs["rejected"], strict=True)
    ]
    pairs["pair"] = [
        None if p is None else json.dumps([p, c, r])
        for p, c, r in zip(pairs["prompt_messages"], pairs["chosen"], pairs["rejected"], strict=True)
    ]
    total: list[Any] = []
    prompt: list[Any] = []
    well_formed = set(pairs.index[pairs["prompt_messages"].notna()])
    encoded = iter(
        encode_pair(tokenizer, p, None, None)
        for p in pairs_of(pairs.assign(chosen=chosen, rejected=rejected))
    )
    for i in pairs.index:
        e = next(encoded) if i in well_formed else None
        total.append(None if e is None else e.total_tokens)
        prompt.append(None if e is None else e.prompt_tokens)
    pairs["total_tokens"] = pd.array(total, dtype="Int64")
    pairs["prompt_tokens"] = pd.array(prompt, dtype="Int64")
    fields = required_fields(params, raw).values()
    pairs = pairs.drop(columns=[c for c in fields if c not in raw.columns and c in pairs.columns])
    for column in fields:
        if column in raw.columns and column not in pairs.columns:
            pairs[column] = (
                raw[column].map(lambda v: v if v is None or isinstance(v, str) else str(v)).to_numpy()
            )
    batch = file_batch(key, pairs, "prompt", "label")
    return replace(batch, index_columns=batch.index_columns + [c for c in _SHOWN if c in pairs.columns])


def pair_checks(
    key: str, batch: Batch, params: Params, max_length: int, fields: dict[str, str]
) -> list[Check]:
    """Expectations on one file; those on records only when the `fields` it requires exist."""
    cfg, pref = params.validate_, params.preference

    def on(
        name: str, column: str, expectation: gxe.Expectation, why: str, limit: Limit | None = None
    ) -> Check:
        return Check(name, expectation, key, batch.file, column, why, limit)

    def share(count: str, limit: int | None) -> Limit:
        return Limit("validate.max_truncated_fraction", cfg.max_truncated_fraction,
                     "{count} of {total} pairs ({share}) have more than " + f"{limit} {count} tokens after "
                     "templating, more than {key} = {value}; shorten them, raise the preference length "
                     "limits, or raise the key")  # fmt: skip

    # nothing can be templated or trained without these fields
    checks = [on(f"{column}_present", column, gxe.ExpectColumnToExist(column=column),
                 f"the field '{column}' ({param}) must exist")
              for param, column in fields.items()]  # fmt: skip
    if not all(column in batch.frame.columns for column in fields.values()):
        return checks
    in_set = gxe.ExpectColumnValuesToBeInSet
    checks += [
        # a pair without its fields, or with turns out of order, cannot be templated
        on("pairs_well_formed", "problem", in_set(column="problem", value_set=["ok"]),
           "every record needs a prompt and chosen/rejected answers (message lists ending on assistant)"),
        # an empty answer teaches the model to prefer (or avoid) saying nothing
        on("chosen_not_empty", "chosen",
           gxe.ExpectColumnValueLengthsToBeBetween(column="chosen", min_value=1),
           "the chosen answer must not be blank"),
        on("rejected_not_empty", "rejected",
           gxe.ExpectColumnValueLengthsToBeBetween(column="rejected", min_value=1),
           "the rejected answer must not be blank"),
        # identical answers carry no preference: the DPO loss has nothing to push apart
        on("chosen_differs_from_rejected", "answers_differ",
           in_set(column="answers_differ", value_set=[True]), "chosen and rejected must differ"),
        # answers to different prompts are not a preference between two answers to one prompt
        on("same_prompt_in_both", "same_prompt", in_set(column="same_prompt", value_set=["ok"]),
           "chosen and rejected message lists must share the turns before the answer"),
        # duplicates overweight some pairs
        on("no_duplicate_pairs", "pair",
           gxe.ExpectColumnValuesToBeUnique(column="pair", mostly=1.0 - cfg.max_duplicate_fraction),
           f"at most {cfg.max_duplicate_fraction:g} of pairs may repeat (validate.max_duplicate_fraction)",
           duplicates_limit(cfg, "pairs")),
        # a pair cut at max_length loses the end of its answers: the difference DPO learns from
        on("few_pairs_truncated", "total_tokens",
           gxe.ExpectColumnValuesToBeBetween(column="total_tokens", max_value=max_length,
                                             mostly=1.0 - cfg.max_truncated_fraction),
           f"at most {cfg.max_truncated_fraction:g} of pairs may exceed {max_length} tokens after templating "
           "(validate.max_truncated_fraction, preference.max_length)", share("prompt + answer", max_length)),
    ]  # fmt: skip
    if pref.max_prompt_length is not None:
        limit = pref.max_prompt_length
        checks.append(on("few_prompts_truncated", "prompt_tokens",
                         gxe.ExpectColumnValuesToBeBetween(column="prompt_tokens", max_value=limit,
                                                           mostly=1.0 - cfg.max_truncated_fraction),
                         f"at most {cfg.max_truncated_fraction:g} of prompts may exceed {limit} tokens "
                         "(validate.max_truncated_fraction, preference.max_prompt_length)",
                         share("prompt", limit)))  # fmt: skip
    return checks


def validate_pairs(frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
    """The preference suite with the base model's chat template; never raises for bad data."""
    model_dir = base_model_dir(params)  # a registered base too (train.base_model: models:/...)
    tokenizer = load_chat_tokenizer(model_dir)
    pairs = [p for frame in frames.values() for p in pairs_of(canonical_pairs(frame, params.preference))]
    max_length = pair_max_length(pairs, tokenizer, model_dir, params.preference)
    batches = {key: pair_batch(key, frame, params, tokenizer, max_length) for key, frame in frames.items()}
    checks = [
        c
        for key, batch in batches.items()
        for c in pair_checks(key, batch, params, max_length, required_fields(params, frames[key]))
    ]
    return templated_result(batches, checks, params.validate_, max_length)
