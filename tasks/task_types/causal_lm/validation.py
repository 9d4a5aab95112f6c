"""The Great Expectations suite for instruction / chat data (`task: causal_lm`).

The shared machinery (tasks/validation/suite.py) on the canonical messages:
required fields, complete records in role order, empty outputs, duplicate examples, and across
files the train/test leakage of prompts. Then token-level checks after templating: the share of
examples cut at max_length, and that every example keeps at least one response token to learn
from (a response truncated away entirely is reported with its file and row).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import great_expectations.expectations as gxe
import pandas as pd
from transformers import PreTrainedTokenizerBase

from tasks.core.config import Params
from tasks.models.base_models import base_model_dir
from tasks.models.tokenizers import model_max_length
from tasks.task_types.causal_lm.records import canonical_frame, messages_of
from tasks.task_types.causal_lm.templating import encode_example, load_chat_tokenizer, max_length_for
from tasks.validation.report import ValidationResult
from tasks.validation.suite import Batch, Check, Limit, duplicates_limit, file_batch, templated_result

_SHOWN = ["role_order", "reference", "example", "total_tokens", "response_tokens"]


def required_fields(params: Params, frame: pd.DataFrame) -> dict[str, str]:
    """The fields a record needs, by the params key that names them."""
    sft, data = params.sft, params.data
    if sft.from_classification:
        return {"data.text_column": data.text_column, "data.label_column": data.label_column}
    if sft.format == "chat" or (sft.format == "auto" and sft.messages_field in frame.columns):
        return {"sft.messages_field": sft.messages_field}
    return {"sft.instruction_field": sft.instruction_field, "sft.output_field": sft.output_field}


def token_columns(frame: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int) -> pd.DataFrame:
    """Templated length before the cut and response tokens kept after it, per well-formed row."""
    total: list[Any] = []
    kept: list[Any] = []
    for text in frame["messages"]:
        if text is None:
            total.append(None)
            kept.append(None)
            continue
        encoded = encode_example(tokenizer, json.loads(text), max_length)
        total.append(encoded.total_tokens)
        kept.append(encoded.response_tokens)
    return frame.assign(
        total_tokens=pd.array(total, dtype="Int64"), response_tokens=pd.array(kept, dtype="Int64")
    )


def sft_batch(key: str, raw: pd.DataFrame, params: Params, tokenizer: Any, max_length: int) -> Batch:
    """The canonical frame of one file with the raw required fields, example keys and token counts."""
    canonical = canonical_frame(raw, params.data, params.sft)
    for column in required_fields(params, raw).values():
        if column in raw.columns:
            canonical[column] = raw[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    stripped = canonical["messages"].map(
        lambda t: (
            None if t is None else json.dumps([{**m, "content": m["content"].strip()} for m in json.loads(t)])
        )
    )
    canonical = token_columns(canonical.assign(example=stripped), tokenizer, max_length)
    batch = file_batch(key, canonical, "prompt", "label")
    return replace(batch, index_columns=batch.index_columns + _SHOWN)


def truncation_limit(params: Params, max_length: int, model_cap: int | None) -> Limit:
    """Examples cut at `max_length`: the share over it, and whether a longer max_length could help."""
    over = (
        f"{{count}} of {{total}} examples ({{share}}) are longer than {max_length} tokens after templating, "
    )
    if model_cap is not None and max_length >= model_cap:
        fix = (
            f"the model's maximum length is {model_cap} tokens, so raising tokenize.max_length cannot "
            "help: shorten those examples, choose a base model with a longer context, or raise the limit"
        )
    else:
        cap = f" (the model takes up to {model_cap})" if model_cap is not None else ""
        fix = f"raise tokenize.max_length{cap}, shorten those examples, or raise the limit"
    return Limit("validate.max_truncated_fraction", params.validate_.max_truncated_fraction,
                 over + "more than {key} = {value}; " + fix)  # fmt: skip


def sft_checks(
    key: str, batch: Batch, params: Params, max_length: int, model_cap: int | None = None
) -> list[Check]:
    """Expectations on one file; those on records only when the required fields exist.

    `model_cap`: the base model's own maximum length, which the truncation error names.
    """
    cfg, fields = params.validate_, required_fields(params, batch.frame)

    def on(
        name: str, column: str, expectation: gxe.Expectation, why: str, limit: Limit | None = None
    ) -> Check:
        return Check(name, expectation, key, batch.file, column, why, limit)

    # nothing can be templated or trained without these fields
    checks = [on(f"{column}_present", column, gxe.ExpectColumnToExist(column=column),
                 f"the field '{column}' ({param}) must exist")
              for param, column in fields.items()]  # fmt: skip
    if not all(column in batch.frame.columns for column in fields.values()):
        return checks
    chat = "sft.messages_field" in fields
    checks += [
        # a record without its fields, or with turns out of order, cannot be templated
        on("chat_roles_in_order" if chat else "fields_not_null", "role_order",
           gxe.ExpectColumnValuesToBeInSet(column="role_order", value_set=["ok"]),
           "messages must be system?, then user/assistant turns ending on assistant" if chat
           else "every record needs an instruction and an output"),
        # empty outputs teach the model to say nothing
        on("output_not_empty", "reference",
           gxe.ExpectColumnValueLengthsToBeBetween(column="reference", min_value=1),
           "the (last) assistant response must not be blank"),
        # duplicates overweight some examples
        on("no_duplicate_examples", "example",
           gxe.ExpectColumnValuesToBeUnique(column="example", mostly=1.0 - cfg.max_duplicate_fraction),
           f"at most {cfg.max_duplicate_fraction:g} of examples may repeat "
           "(validate.max_duplicate_fraction)", duplicates_limit(cfg, "examples")),
        # an example cut at max_length loses its end: usually the response
        on("few_examples_truncated", "total_tokens",
           gxe.ExpectColumnValuesToBeBetween(column="total_tokens", max_value=max_length,
                                             mostly=1.0 - cfg.max_truncated_fraction),
           f"at most {cfg.max_truncated_fraction:g} of examples may exceed {max_length} tokens after "
           "templating (validate.max_truncated_fraction, tokenize.max_length)",
           truncation_limit(params, max_length, model_cap)),
        # no response token left: the example adds nothing but prompt to the loss-free positions
        on("responses_survive_truncation", "response_tokens",
           gxe.ExpectColumnValuesToBeBetween(column="response_tokens", min_value=1),
           f"every example must keep at least one response token within {max_length} tokens",
           Limit("tokenize.max_length", max_length,
                 "{count} examples ({share}) keep no response token within {value} tokens ({key}); "
                 "shorten their prompts or raise the key")),
    ]  # fmt: skip
    return checks


def validate_sft(
    frames: dict[str, pd.DataFrame],
    params: Params,
    tokenizer: Any,
    max_length: int,
    model_cap: int | None = None,
) -> ValidationResult:
    """Run the SFT suite on the raw frames ("train", optional "test"); never raises for bad data."""
    batches = {key: sft_batch(key, frame, params, tokenizer, max_length) for key, frame in frames.items()}
    checks = [
        c for key, batch in batches.items() for c in sft_checks(key, batch, params, max_length, model_cap)
    ]
    return templated_result(batches, checks, params.validate_, max_length)


def validate_records(frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
    """The SFT suite with the base model's chat template and the max_length of the rows it checks.

    With `tokenize.max_length: null` the limit is the longest templated example of every row
    validated (both files, before any `max_*_samples` cap), so a row left out by sampling
    can never fail a limit that the sampled rows set.
    """
    model_dir = base_model_dir(params)
    tokenizer = load_chat_tokenizer(model_dir)
    rows = [canonical_frame(frame, params.data, params.sft) for frame in frames.values()]
    records = [m for frame in rows for m in messages_of(frame)]
    max_length = max_length_for(records, tokenizer, model_dir, params.tokenize)
    return validate_sft(frames, params, tokenizer, max_length, model_max_length(tokenizer, model_dir))
