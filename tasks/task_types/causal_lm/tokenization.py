"""Causal-LM splits to model inputs: every conversation templated and masked (labels -100 on prompts).

The content key names what the result depends on, for the shared on-disk cache
(`tasks.tokenization.cache`): the split conversations, the max_length rule and the code; and
`sft.packing`, which TRL applies to these examples at training time, so that a packed and an
unpacked training never share a checkpoint key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from tasks.core.config import Params
from tasks.core.hashing import code_version
from tasks.data.splitting import Splits
from tasks.task_types.causal_lm.records import messages_of
from tasks.task_types.causal_lm.templating import encode_example, load_chat_tokenizer, max_length_for


def content_key(splits: Splits, params: Params) -> str:
    """What the tokenized splits depend on besides the tokenizer: the conversations, the max_length
    rule, packing and the templating code."""
    digest = hashlib.sha256()
    for name, frame in splits.frames().items():
        digest.update(name.encode())
        for text in frame["messages"]:
            digest.update(f"{text}\n".encode())
    rule = {"max_length": params.tokenize.max_length, "percentile": params.tokenize.length_percentile}
    digest.update(json.dumps({**rule, "packing": params.sft.packing}, sort_keys=True).encode())
    here = Path(__file__)
    digest.update(code_version(here, here.with_name("templating.py")).encode())
    return digest.hexdigest()


def tokenize_sft(
    splits: Splits, tokenizer: PreTrainedTokenizerBase, max_length: int, packing: bool
) -> tuple[DatasetDict, dict[str, Any]]:
    """Every split templated and masked (packing happens in training). The data and its facts."""
    out: dict[str, Dataset] = {}
    truncated = 0
    for name, frame in splits.frames().items():
        examples = [encode_example(tokenizer, m, max_length) for m in messages_of(frame)]
        truncated += sum(e.total_tokens > max_length for e in examples)
        out[name] = Dataset.from_dict(
            {
                "input_ids": [e.input_ids for e in examples],
                "attention_mask": [[1] * len(e.input_ids) for e in examples],
                "labels": [e.labels for e in examples],
            }
        )
    return DatasetDict(out), {
        "max_length": max_length,
        "truncated_examples": int(truncated),
        "packing": packing,
    }


def tokenize(splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
    """Template, tokenize and mask every split; with max_length null, none of their rows is cut."""
    tokenizer = load_chat_tokenizer(model_dir)
    records = [m for frame in splits.frames().values() for m in messages_of(frame)]
    max_length = max_length_for(records, tokenizer, model_dir, params.tokenize)
    return tokenize_sft(splits, tokenizer, max_length, params.sft.packing)
