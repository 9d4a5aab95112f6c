"""Loading a base model's tokenizer and the longest input the model accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import ModelSourceError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    """The model's fast tokenizer; slow (pure Python) tokenizers are refused."""
    from transformers import AutoTokenizer  # transformers loads torch: only where a tokenizer is needed

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    if not tokenizer.is_fast:
        raise ModelSourceError(f"train.base_model: {model_dir} has no fast tokenizer (tokenizer.json)")
    return tokenizer


def model_max_length(tokenizer: PreTrainedTokenizerBase, model_dir: Path) -> int:
    """The longest input the model accepts: tokenizer limit and position embeddings."""
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 1_000_000 else []
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if isinstance(config.get("max_position_embeddings"), int):
        limits.append(int(config["max_position_embeddings"]))
    return min(limits) if limits else 512
