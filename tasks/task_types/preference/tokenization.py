"""Preference pairs to TRL's DPO inputs: `prompt_ids`, `chosen_ids`, `rejected_ids` per pair.

The prompt is the chat template (causal_lm/templating.py) rendered up to the assistant's turn;
each answer is what the template adds after it (the answer and its end-of-turn tokens). A prompt
longer than `preference.max_prompt_length` keeps its end (the question nearest the answer); an
answer that would pass `preference.max_length` with its prompt is cut on the right.
The content key covers the pairs, the length rule, the DPO settings that shape the training
(beta, loss) and this code, for the shared tokenization cache and the checkpoint key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from tasks.core.config import Params, PreferenceConfig
from tasks.core.errors import RefineryError
from tasks.core.hashing import code_version
from tasks.data.splitting import Splits
from tasks.models.tokenizers import model_max_length
from tasks.task_types.causal_lm.templating import load_chat_tokenizer, render
from tasks.task_types.preference.records import Messages, pairs_of


@dataclass(frozen=True)
class EncodedPair:
    """One templated pair cut to the limits, and its lengths before the cut."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    prompt_tokens: int  # before the cut
    total_tokens: int  # prompt + the longer answer, before any cut

    def truncated(self, max_length: int, max_prompt_length: int | None) -> bool:
        return self.total_tokens > max_length or (
            max_prompt_length is not None and self.prompt_tokens > max_prompt_length
        )


def _answer_text(tokenizer: PreTrainedTokenizerBase, prompt: Messages, prompt_text: str, answer: str) -> str:
    full = render(tokenizer, [*prompt, {"role": "assistant", "content": answer}], generation=False)
    if not full.startswith(prompt_text):
        raise RefineryError(
            "tokenize: the chat template renders a prompt that is not a prefix of the conversation; "
            "answers cannot be located (use a template with add_generation_prompt support)"
        )
    return full[len(prompt_text) :]


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    pair: tuple[Messages, str, str],
    max_length: int | None,
    max_prompt_length: int | None,
) -> EncodedPair:
    """Token ids of the templated prompt and both answers, cut to the limits (None: no cut)."""
    prompt, chosen, rejected = pair
    prompt_text = render(tokenizer, prompt, generation=True)

    def ids(text: str) -> list[int]:
        encoded: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return encoded

    prompt_ids = ids(prompt_text)
    answers = [ids(_answer_text(tokenizer, prompt, prompt_text, a)) for a in (chosen, rejected)]
    total = len(prompt_ids) + max(len(a) for a in answers)
    kept = prompt_ids if max_prompt_length is None else prompt_ids[-max_prompt_length:]
    room = None if max_length is None else max(0, max_length - len(kept))
    return EncodedPair(kept, answers[0][:room], answers[1][:room], len(prompt_ids), total)


def pair_max_length(
    pairs: list[tuple[Messages, str, str]],
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    cfg: PreferenceConfig,
) -> int:
    """`preference.max_length`, else the longest templated pair; capped by the model either way."""
    cap = model_max_length(tokenizer, model_dir)
    if cfg.max_length is not None:
        return min(cfg.max_length, cap)
    lengths = [encode_pair(tokenizer, p, None, None).total_tokens for p in pairs]
    return min(cap, max([8, *lengths]))


def content_key(splits: Splits, params: Params) -> str:
    """What the tokenized pairs (and the training on them) depend on besides the tokenizer."""
    digest = hashlib.sha256()
    for name, frame in splits.frames().items():
        digest.update(name.encode())
        for row in zip(frame["prompt_messages"], frame["chosen"], frame["rejected"], strict=True):
            digest.update(f"{json.dumps(list(row))}\n".encode())
    digest.update(json.dumps(params.preference.model_dump(mode="json"), sort_keys=True).encode())
    here = Path(__file__)
    digest.update(code_version(here, here.parents[1] / "causal_lm" / "templating.py").encode())
    return digest.hexdigest()


def tokenize(splits: Splits, model_dir: Path, params: Params) -> tuple[DatasetDict, dict[str, Any]]:
    """Every split's pairs as TRL's DPO ids; the facts recorded with them."""
    cfg = params.preference
    tokenizer = load_chat_tokenizer(model_dir)
    pairs = {name: pairs_of(frame) for name, frame in splits.frames().items()}
    max_length = pair_max_length([p for ps in pairs.values() for p in ps], tokenizer, model_dir, cfg)
    out: dict[str, Dataset] = {}
    truncated = 0
    for name, split_pairs in pairs.items():
        encoded = [encode_pair(tokenizer, p, max_length, cfg.max_prompt_length) for p in split_pairs]
        truncated += sum(e.truncated(max_length, cfg.max_prompt_length) for e in encoded)
        out[name] = Dataset.from_dict(
            {
                "prompt_ids": [e.prompt_ids for e in encoded],
                "chosen_ids": [e.chosen_ids for e in encoded],
                "rejected_ids": [e.rejected_ids for e in encoded],
            }
        )
    facts = {
        "max_length": max_length,
        "max_prompt_length": cfg.max_prompt_length,
        "truncated_pairs": truncated,
    }
    return DatasetDict(out), facts
