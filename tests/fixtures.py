"""Tiny models built from a config for tests: no Hub, no download, about 100 KB on disk.

In transformers 5 `BertTokenizer` is the fast (Rust `tokenizers`) tokenizer; `BertTokenizerFast`
is only an alias of it and is not exported to type checkers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS_TEXT = (
    "i my the a to is was card account money transfer payment cash atm pin top up refund fee "
    "balance exchange rate lost stolen new order when where why how can not still pending "
    "declined app phone help please hi thanks change address limit cancel verify identity"
)
WORDS = _WORDS_TEXT.split()


def build_tiny_classifier(path: Path, labels: list[str], seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer BERT classifier and its fast tokenizer into `path`.

    The config carries `id2label`/`label2id`, as a fine-tuned model's would; the weights are
    seeded, so two calls with the same arguments produce the same model.
    """
    path.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"  # every lowercase word splits into known pieces
    vocab = SPECIAL_TOKENS + sorted(set(WORDS) | set(letters)) + [f"##{c}" for c in letters]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab_file), model_max_length=64)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
